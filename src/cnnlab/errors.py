"""Project exceptions: one line that names the file or argument and the problem."""

from __future__ import annotations

from collections.abc import Mapping


class CnnlabError(Exception):
    """Base error; the CLI prints its message on one line and exits non-zero.

    With ``parameter`` the message is about that argument of a library function and reads
    "<parameter> <message>"; the command line shows its own flag for it instead (``worded``),
    so the library speaks to Python callers in their argument names and the CLI in flags.
    """

    def __init__(self, message: str, *, parameter: str | None = None):
        self.parameter, self.detail = parameter, message
        super().__init__(_joined(parameter, message) if parameter else message)

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with the parameter named as ``names`` (parameter -> flag) says."""
        if self.parameter and self.parameter in names:
            return _joined(names[self.parameter], self.detail)
        return str(self)


def _joined(name: str, detail: str) -> str:
    """"epochs must be ...", "hflip: flips change ..." (a detail may start with its colon)."""
    return f"{name}{detail}" if detail.startswith(":") else f"{name} {detail}"


class DataError(CnnlabError):
    """A data file or folder is missing, unreadable or malformed."""


class CheckpointError(CnnlabError):
    """A checkpoint or run directory is missing or inconsistent."""


class ConfigError(CnnlabError):
    """An argument or configuration value is invalid."""
