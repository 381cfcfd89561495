"""Built-in dataset plugins: ESC-50, ESC-10, a folder per class, a CSV manifest, UrbanSound8K."""
