"""A run's recipe as typed dataclasses, and the one pair of functions that (de)serialises them.

``RunConfig`` = the lab's name + its task settings (a dataclass the lab defines) + the shared
``OptimConfig``. It is written to ``config.json`` and into every checkpoint, and read back by
``--resume`` and ``train --config``; a saved run therefore reproduces itself.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cnnlab.engine.rules import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    check_settings,
    choice,
    setting,
)
from cnnlab.errors import CnnlabError, ConfigError, shown_path

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass as JSON-ready data: nested dataclasses become dicts, tuples lists."""
    def plain(value):
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(config)


def config_from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """``cls`` rebuilt from :func:`config_to_dict`'s output: lists become tuples where the field
    is a tuple, nested dataclasses are rebuilt, and an unknown key or a value of the wrong type
    is a one-line error naming ``where`` (a typo in a config file must not pass silently)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object of {cls.__name__} settings")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(names))})")
    values = {name: _typed(hints[name], value, f"{where}: {name}") for name, value in data.items()}
    try:
        return cls(**values)  # the settings' own rules, the same as the flags'
    except (TypeError, ValueError, CnnlabError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _typed(hint: Any, value: Any, where: str) -> Any:
    """``value`` checked against and converted to the annotation ``hint``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _typed(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        if args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(_typed(a, v, where) for a, v in zip(args, value))
        return tuple(_typed(item, v, where) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (not isinstance(value, hint) or
                                           (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


# the names the optimisation settings take (engine.optim and engine.device build them)
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
AMP = ("none", "bf16", "fp16")
# "auto": what the lab has checked for the device (Lab.auto_amp), written down resolved
AMP_CHOICES = ("auto", *AMP)


@dataclass
class OptimConfig:
    """Optimisation settings shared by the labs; each value is checked against its rule when
    the settings are made (flags, config files, saved runs, sweeps and Python alike)."""

    epochs: int = setting(10, POSITIVE_INT)
    batch_size: int = setting(128, POSITIVE_INT)
    optimizer: str = setting("adam", choice(*OPTIMIZERS))
    lr: float = setting(1e-3, POSITIVE)
    momentum: float = setting(0.9, FRACTION)
    weight_decay: float = setting(0.0, NON_NEGATIVE)
    schedule: str = setting("constant", choice(*SCHEDULES))
    milestones: tuple[int, ...] = setting((), POSITIVE_INT.each_item())
    gamma: float = setting(0.1, POSITIVE)
    warmup_epochs: float = setting(0.0, NON_NEGATIVE)
    grad_clip: float | None = setting(None, POSITIVE)
    amp: str = setting("auto", choice(*AMP_CHOICES))
    compile: bool = False
    seed: int = setting(0, SEED)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every setting within its rule (also after fields were assigned by hand)."""
        check_settings(self)

    def unused(self) -> list[Unused]:
        """The settings given (other than their defaults) that this recipe would not use."""
        found = []
        if self.optimizer != "sgd" and self.momentum != DEFAULT_OPTIM.momentum:
            found.append(Unused("momentum", f"only `optimizer` sgd uses it ({self.optimizer} "
                                            "has its own)", "optimizer"))
        if self.schedule != "step":
            for name in ("milestones", "gamma"):
                if getattr(self, name) != getattr(DEFAULT_OPTIM, name):
                    found.append(Unused(name, "only `schedule` step uses it", "schedule"))
        elif not self.milestones and self.gamma != DEFAULT_OPTIM.gamma:
            found.append(Unused("gamma", "the step schedule multiplies the lr by it at each of "
                                         "`milestones`, and none are given", "milestones"))
        if self.schedule != "cosine" and self.warmup_epochs != DEFAULT_OPTIM.warmup_epochs:
            found.append(Unused("warmup_epochs", "only `schedule` cosine warms up", "schedule"))
        return found


@dataclass(frozen=True)
class Unused:
    """A setting a recipe would not use: its name, why, and the setting that decides it (a
    sweep that searches that setting may use it after all)."""

    name: str
    why: str
    decided_by: str

    def refusal(self, value: Any) -> ConfigError:
        shown = "" if isinstance(value, tuple) else f"{value:g}" if isinstance(value, float) \
            else f"{value}"
        return ConfigError(f"{shown}: {self.why}; here it would change nothing",
                           parameter=self.name)


def refuse_unused(run: Any, unused: list[Unused], searched: tuple[str, ...] = ()) -> None:
    """The first setting of ``run`` (a RunConfig) that it would not use, refused in one line,
    unless ``searched`` (a sweep's settings) holds what decides it."""
    for item in unused:
        if item.decided_by not in searched:
            part = run.optim if hasattr(run.optim, item.name) else run.task
            raise item.refusal(getattr(part, item.name))


DEFAULT_OPTIM = OptimConfig()

# keys of config.json that describe the session, not the recipe (read back, never compared)
SESSION_KEYS = ("world_size", "title")


@dataclass
class RunConfig:
    """Everything that defines a training run: ``task`` is the lab's settings dataclass."""

    lab: str
    task: Any
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        """``{"lab": ..., <lab>: task settings, "optim": ...}``: the task section is named
        after the lab, as config.json files and model cards have always recorded it."""
        return {"lab": self.lab, self.lab: config_to_dict(self.task),
                "optim": config_to_dict(self.optim)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], lab: str, task_class: type, where: str,
                  upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None
                  ) -> RunConfig:
        """The run ``data`` describes, which must be one of ``lab``; ``upgrade`` maps an older
        task section onto today's fields."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: not a run configuration")
        if data.get("lab") != lab or lab not in data:
            found = data.get("lab")
            raise ConfigError(f"{where}: " + (f"a {found} run, not a {lab} run" if found
                                              else "not a cnnlab run configuration"))
        extra = sorted(set(data) - {"lab", lab, "optim", *SESSION_KEYS})
        if extra:
            raise ConfigError(f"{where}: unknown section {', '.join(extra)}")
        section = upgrade(dict(data[lab])) if upgrade else data[lab]
        task = config_from_dict(task_class, section, f"{where}: {lab}")
        optim = config_from_dict(OptimConfig, data.get("optim", {}), f"{where}: optim")
        return cls(lab, task, optim)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config.json (or a run directory holding one) as data; one-line errors."""
    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path}: not a run directory (no config.json)")
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(f"{shown_path(path)}: no such config file")
    return read_json(path, ConfigError)


def read_json(path: Path, error: type[CnnlabError] = ConfigError,
              parameter: str | None = None) -> Any:
    """A user's JSON file as data, or a one-line ``error`` naming it: unreadable, not UTF-8,
    malformed, or nested too deep for Python to read (a hostile file)."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM: Windows Notepad
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not a readable JSON file ({exc})", parameter=parameter) from None
    except RecursionError:
        raise error(f"{path}: not a readable JSON file (nested too deep)",
                    parameter=parameter) from None
