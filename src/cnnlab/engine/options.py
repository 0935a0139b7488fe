"""Options that only matter under a condition, refused when given where they would change
nothing, by one condition declared beside the function that takes them (what values an option
may take is ``engine.rules``'s; whether it has any effect is this module's).

A function says, next to its signature, when each conditional option has any effect:

    @effective_when(min_confidence=needs("filter", why="the threshold --filter applies"))
    def predict_folder(..., filter=False, min_confidence=None): ...

Its callers pass None (or False for a switch) for "not given", and the function applies the
real default itself; a switch that is on unless turned off defaults to None, and False is then
what a caller gives; the rule refuses a given option whose condition is false, in one line
naming it and why. The Python API and the command line (which only parses and calls the API)
pass through the same rule, so no command keeps its own list of what it would ignore."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.engine.rules import checking_arguments
from cnnlab.errors import ConfigError

Values = Mapping[str, Any]


def given(value: object, default: object = False) -> bool:
    """An option a caller gave: anything but None (not given) and False (a switch left off),
    unless the function's ``default`` is None: then False turns off what is on by default."""
    return value is not None and (value is not False or default is None)


@dataclass(frozen=True)
class Condition:
    """``effective(values)``: whether the option changes anything given the other arguments;
    ``why``: the rest of the one-line refusal, after the option's name ("needs ...",
    ": not used with ...")."""

    effective: Callable[[Values], bool]
    why: str


def needs(*names: str, why: str) -> Condition:
    """Effective only with one of ``names`` given; ``why`` says what it does with them."""
    quoted = " or ".join(f"`{name}`" for name in names)
    return Condition(lambda values: any(given(values.get(name)) for name in names),
                f"needs {quoted} ({why}); otherwise it changes nothing")


def not_with(name: str, why: str) -> Condition:
    """Not used when ``name`` is given; ``why`` says what ``name`` does instead."""
    return Condition(lambda values: not given(values.get(name)),
                     f": not used with `{name}` ({why})")


def when(effective: Callable[[Values], bool], why: str) -> Condition:
    """Effective when ``effective(values)``; ``why`` says when it is, or what it is for."""
    return Condition(effective, f": {why}")


Conditions = Mapping[str, "Condition | Sequence[Condition]"]


def refuse_ignored(values: Values, rules: Conditions,
                   defaults: Mapping[str, Any] | None = None) -> None:
    """Refuse the first given option (in ``rules``' order) one of whose rules says it would
    change nothing, in one line naming it; ``defaults``: the function's own (see ``given``)."""
    for name, declared in rules.items():
        if not given(values.get(name), (defaults or {}).get(name, False)):
            continue
        for rule in (declared,) if isinstance(declared, Condition) else declared:
            if not rule.effective(values):
                raise ConfigError(rule.why, parameter=name)


def effective_when(**rules: Condition | Sequence[Condition]) -> Callable:
    """A decorator: the function's arguments (defaults applied) go through ``refuse_ignored``
    with ``rules`` before its body runs; the rules stay readable as ``function.option_rules``."""
    def decorate(function: Callable) -> Callable:
        defaults = {name: parameter.default for name, parameter
                    in inspect.signature(function).parameters.items()}
        checked = checking_arguments(rules, lambda values: refuse_ignored(values, rules,
                                                                          defaults),
                                     with_defaults=True)(function)
        checked.option_rules = dict(rules)  # type: ignore[attr-defined]
        return checked
    return decorate
