"""Long films and many films: segments, resume, batches, local and Ray executors."""
