"""Errors a user can act on: the CLI prints them as one line and exits non-zero."""


class EdgeFleetError(Exception):
    """A problem with the user's input or environment, reported as one line."""

    exit_code = 2


class ConfigError(EdgeFleetError):
    """A malformed, unknown or out-of-range configuration value."""


class DataError(EdgeFleetError):
    """Input data that is missing, corrupt or of the wrong shape."""


class RunDirError(EdgeFleetError):
    """A run directory that would be overwritten or cannot be written."""
