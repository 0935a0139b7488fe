"""``python -m cnnlab.cli``: the same as the ``cnnlab`` command."""

from cnnlab.cli import command_line

command_line()
