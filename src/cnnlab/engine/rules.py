"""What values a setting may take, stated once on the settings dataclass and checked on every
way in: the command line's flags (``Rule.parse`` is their argparse type), ``--config`` files
and saved runs (read through the dataclass), sweep spaces (every value a range or choice can
draw) and the Python API (the dataclass checks itself when it is made).

Torch-free, so that ``--help`` lists the rules without loading it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from cnnlab.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

RULE = "rule"  # the dataclass field metadata key that holds a setting's Rule


@dataclass(frozen=True)
class Rule:
    """A number within [low, high] (open ends where asked), a multiple of ``multiple``; or one
    of ``choices``. ``each``: the setting is a tuple and the rule holds for every item."""

    kind: type = float  # int, float or str (with choices)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    multiple: int | None = None
    choices: tuple[str, ...] = ()
    each: bool = False
    length: int | None = None  # with ``each``: how many items (None: any number)

    def words(self, one: bool = False) -> str:
        """The rule in words: "an integer >= 1", "a number in [0, 1)", "one of adam, sgd",
        "2 integers >= 16" (``one``: what each item must be)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        many = self.each and not one
        noun = ("integers" if many else "an integer") if self.kind is int else (
            "numbers" if many else "a number")
        if many and self.length:
            noun = f"{self.length} {noun}"
        low, high = (None if v is None else f"{v:d}" if self.kind is int else f"{v:g}"
                     for v in (self.low, self.high))
        if low is not None and high is not None:
            bounds = (f" in {'(' if self.low_open else '['}{low}, "
                      f"{high}{')' if self.high_open else ']'}")
        elif low is not None:
            bounds = f" {'>' if self.low_open else '>='} {low}"
        elif high is not None:
            bounds = f" {'<' if self.high_open else '<='} {high}"
        else:
            bounds = ""
        multiple = (f", {'multiples' if many else 'a multiple'} of {self.multiple}"
                    if self.multiple else "")
        return noun + bounds + multiple

    def each_item(self, length: int | None = None) -> Rule:
        """The rule for a tuple setting whose every item must keep it (``length`` of them)."""
        return dataclasses.replace(self, each=True, length=length)

    def breaks(self, value: Any) -> bool:
        """Whether one value (an item, for ``each``) breaks the rule."""
        if self.choices:
            return value not in self.choices
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return True
        if self.kind is int and not isinstance(value, numbers.Integral):
            return True  # 32.0 is no layer count; a float here is a mistake upstream
        if not math.isfinite(value):
            return True
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return True
        if self.high is not None and (value >= self.high if self.high_open
                                      else value > self.high):
            return True
        return bool(self.multiple and value % self.multiple)

    def check(self, value: Any, name: str) -> None:
        """A one-line error naming the setting ``name`` when ``value`` breaks the rule (None,
        where a setting allows it, means "not set" and passes)."""
        if value is None:
            return
        if self.each:
            wrong = (not isinstance(value, (list, tuple))
                     or (self.length is not None and len(value) != self.length)
                     or any(self.breaks(item) for item in value))
        else:
            wrong = self.breaks(value)
        if wrong:
            raise ConfigError(f"must be {self.words()}, got {_shown(value)}", parameter=name)

    def parse(self, text: str) -> Any:
        """The command line's reading of one value (an item, for ``each``): refused where it
        is parsed, so a negative clip norm or a NaN learning rate never reaches training."""
        if self.choices:
            value: Any = text
        else:
            try:
                value = self.kind(text)
            except ValueError:
                value = None
        if value is None or self.breaks(value):
            raise argparse.ArgumentTypeError(f"expected {self.words(one=True)}, got {text!r}")
        return value

    __call__ = parse  # the command line's flags take the rule as their argparse ``type``


def _shown(value: Any) -> str:
    return repr(tuple(value)) if isinstance(value, list) else repr(value)


def setting(default: Any = dataclasses.MISSING, rule: Rule | None = None, *,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field holding ``rule``: ``lr: float = setting(1e-3, POSITIVE)``."""
    metadata = {RULE: rule} if rule is not None else {}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def rule_of(settings: Any, name: str) -> Rule | None:
    """The rule of setting ``name`` of a settings dataclass (or instance), if it has one."""
    for item in dataclasses.fields(settings):
        if item.name == name:
            return item.metadata.get(RULE)
    return None


def check_settings(settings: Any) -> None:
    """Every setting of a dataclass instance against its rule; the first broken one is a
    one-line error naming it. Settings dataclasses call this from ``__post_init__``, so no way
    of making one skips it."""
    for item in dataclasses.fields(settings):
        rule = item.metadata.get(RULE)
        if rule is not None:
            rule.check(getattr(settings, item.name), item.name)


def checking_arguments(names: Iterable[str], check: Callable[[dict[str, Any]], None],
                       with_defaults: bool = False) -> Callable[[F], F]:
    """A decorator: ``check`` sees each call's arguments by name (``with_defaults``: the
    defaults filled in) before the body runs; ``names`` must be parameters. A call Python
    itself refuses (a wrong argument) gets Python's own error."""
    def wrap(function: F) -> F:
        signature = inspect.signature(function)
        unknown = set(names) - set(signature.parameters)
        if unknown:
            raise TypeError(f"{function.__qualname__} has no parameter "
                            f"{', '.join(sorted(unknown))}")

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return function(*args, **kwargs)
            if with_defaults:
                bound.apply_defaults()
            check(bound.arguments)
            return function(*args, **kwargs)
        return call  # type: ignore[return-value]
    return wrap


def checked(**rules: Rule) -> Callable[[F], F]:
    """A library function whose arguments keep ``rules`` (parameter -> Rule), checked on every
    call before any work, in one line naming the parameter; the command line's flag for the
    same parameter takes the same Rule object as its type (``function.rules``)."""
    def check(given: dict[str, Any]) -> None:
        for name, rule in rules.items():
            if name in given:
                rule.check(given[name], name)

    def wrap(function: F) -> F:
        call = checking_arguments(rules, check)(function)
        call.rules = rules  # type: ignore[attr-defined]
        return call
    return wrap


# the rules most settings share
POSITIVE_INT = Rule(int, 1)
COUNT = Rule(int, 0)  # zero allowed
POSITIVE = Rule(float, 0, low_open=True)
NON_NEGATIVE = Rule(float, 0)
FRACTION = Rule(float, 0, 1, high_open=True)  # [0, 1)
SEED = Rule(int, 0, 2**32 - 1)  # numpy's seeds (each process adds its rank, modulo 2**32)


def choice(*names: str) -> Rule:
    return Rule(str, choices=tuple(names))
