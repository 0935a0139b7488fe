"""Project exceptions: one line that names the file or argument and the problem."""

from __future__ import annotations


class CnnlabError(Exception):
    """Base error; the CLI prints its message on one line and exits non-zero."""


class DataError(CnnlabError):
    """A data file or folder is missing, unreadable or malformed."""


class CheckpointError(CnnlabError):
    """A checkpoint or run directory is missing or inconsistent."""


class ConfigError(CnnlabError):
    """An argument or configuration value is invalid."""
