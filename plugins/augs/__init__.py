"""Built-in augmentation plugins, one augmentation per module."""
