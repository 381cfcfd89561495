"""`python -m esc50 ...` runs the command-line interface."""

from esc50.cli.main import cli

if __name__ == "__main__":
    cli()
