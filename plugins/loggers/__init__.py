"""Built-in logger plugins: the run folder's history.csv, and TensorBoard."""
