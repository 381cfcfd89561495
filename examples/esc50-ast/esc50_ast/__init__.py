"""An example third-party esc50 plugin package."""
