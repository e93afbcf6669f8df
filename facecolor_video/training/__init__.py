"""Training the head and measuring colour: datasets, the training loop, metrics, evaluation."""
