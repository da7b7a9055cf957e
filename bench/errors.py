"""Errors that are the user's to fix: the CLI prints them as one line and exits 2, no traceback."""


class UsageError(Exception):
    """A bad argument, file or environment the user can correct; the message says how."""


class BaselinesError(UsageError):
    """baselines.json is missing, corrupt or does not follow the schema."""
