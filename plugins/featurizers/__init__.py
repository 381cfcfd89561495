"""Built-in featurizer plugins."""
