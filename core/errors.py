"""The one exception type users see: its message is a single line naming what is wrong."""


class Esc50Error(Exception):
    """A user-facing error (bad input, bad option, missing data); the CLI prints it on one line."""
