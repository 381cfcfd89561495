"""Built-in plugins. Each module is its own entry point in the ``esc50`` group (see setup.cfg),
registered through the same hooks a third-party package uses."""
