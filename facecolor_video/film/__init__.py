"""A film frame by frame: the streaming pipeline, temporal smoothing and scene cuts, previews."""
