"""Every command's --help explains every option and says its default (or that it is required),
so a user never has to read the source to learn what an option does when it is left out."""

from __future__ import annotations

import argparse

import pytest

from cnnlab.cli import DESCRIPTION, build_parser, main


def _commands(parser: argparse.ArgumentParser, name: str = "cnnlab"):
    """(command name, parser) for the program and every subcommand below it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _commands(sub, f"{name} {sub_name}")


COMMANDS = dict(_commands(build_parser()))
FLAGS = (argparse._HelpAction, argparse._VersionAction, argparse._StoreTrueAction,
         argparse._SubParsersAction)


def test_the_audit_sees_every_command():
    assert {"cnnlab classify train", "cnnlab stereo predict", "cnnlab stereo weights import",
            "cnnlab basics run"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_is_explained_with_its_default(name):
    missing = []
    for action in COMMANDS[name]._actions:
        if isinstance(action, FLAGS):
            continue
        label = "/".join(action.option_strings) or action.dest
        text = action.help or ""
        if not text:
            missing.append(f"{label}: no help")
        elif action.option_strings and not action.required and not any(
                word in text for word in ("default", "required")):
            missing.append(f"{label}: the default ({action.default!r}) is not stated")
    assert not missing, f"{name}: " + "; ".join(missing)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_prints_and_exits_cleanly(name, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*name.split()[1:], "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: ")
    if name == "cnnlab":
        assert DESCRIPTION.splitlines()[0] in text
