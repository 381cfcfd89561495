"""The `esc50` command line (click)."""
