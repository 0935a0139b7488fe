"""Project exceptions: one line that names the file or argument and the problem."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

MENTION = re.compile(r"`([a-z_][a-z0-9_]*)`")  # a parameter named inside a message


class CnnlabError(Exception):
    """Base error; the CLI prints its message on one line and exits non-zero.

    With ``parameter`` the message is about that argument of a library function and reads
    "<parameter> <message>"; the command line shows its own flag for it instead (``worded``),
    so the library speaks to Python callers in their argument names and the CLI in flags.
    Other parameters the message mentions are written in backticks (`resume`): plain names
    in Python, flags on the command line.
    """

    def __init__(self, message: str, *, parameter: str | None = None):
        self.parameter, self.detail = parameter, message
        super().__init__(self.worded({}))

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with each parameter named as ``names`` (parameter -> flag) says, or
        by its own name."""
        detail = MENTION.sub(lambda m: names.get(m.group(1), m.group(1)), self.detail)
        if self.parameter:
            return _joined(names.get(self.parameter, self.parameter), detail)
        return detail


def _joined(name: str, detail: str) -> str:
    """"epochs must be ...", "hflip: flips change ..." (a detail may start with its colon)."""
    return f"{name}{detail}" if detail.startswith(":") else f"{name} {detail}"


def shown_path(path: str | os.PathLike) -> str:
    """A path in an error: as given and, when relative (or with ~), the absolute path it
    resolved to from the working folder, e.g. "../data/training (/home/ana/data/training)";
    every "missing"/"no such" message about a user's file or folder says it this way."""
    given = os.fspath(path)
    full = os.path.abspath(os.path.expanduser(given))
    return given if full == given else f"{given} ({full})"


class DataError(CnnlabError):
    """A data file or folder is missing, unreadable or malformed."""


class CheckpointError(CnnlabError):
    """A checkpoint or run directory is missing or inconsistent."""


class ConfigError(CnnlabError):
    """An argument or configuration value is invalid."""
