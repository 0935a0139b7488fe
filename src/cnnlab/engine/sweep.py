"""Hyper-parameter sweeps with Optuna, for any lab: every trial is a normal run directory.

A search space names settings of the run (optimiser fields such as ``lr``, or the lab's task
fields such as ``label_smoothing``) with a distribution each: ``lr=log:1e-4:1e-1``,
``weight_decay=float:0:1e-3``, ``translate=int:0:3``, ``optimizer=choice:adam,sgd``. Trials
are drawn by TPE and pruned by the median rule on each epoch's validation figure. The study
lives in a journal file inside the sweep folder, so a sweep resumes after an interruption and
several processes can share it (run the same command again, elsewhere too). The first trial of
a new sweep is the base recipe itself, so that what the sweep found is compared with the
default in the same conditions.
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from cnnlab.engine.config import RunConfig, read_json, refuse_unused
from cnnlab.engine.rules import rule_of
from cnnlab.errors import CnnlabError, ConfigError, DataError

KINDS = {"log": "log-uniform float", "float": "uniform float", "int": "uniform integer",
         "choice": "one of the listed values"}
STUDY_FILE = "study.journal"
BASELINE = "baseline"  # user attribute marking the base recipe's trial
# settings a sweep cannot vary: where things are, and what would make trials incomparable
FIXED = {"epochs", "seed", "compile", "data_root", "weights_root", "workers", "dataset",
         "val_size", "val_count", "samples_per_epoch", "limit", "test_limit", "module"}


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("sweeps need Optuna: pip install 'cnnlab[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # cnnlab says what happens itself
    return optuna


@dataclass(frozen=True)
class Param:
    """One searched setting and its distribution."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def suggest(self, trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "log")

    def __str__(self) -> str:
        if self.kind == "choice":
            return f"{self.name}=choice:{','.join(self.choices)}"
        return f"{self.name}={self.kind}:{self.low:g}:{self.high:g}"


def parse_param(text: str) -> Param:
    """``NAME=KIND:...`` (see the module docstring) -> Param, or a one-line error."""
    name, sep, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    name = name.strip().replace("-", "_")
    if not sep or not name or kind not in KINDS or not rest:
        raise ConfigError(f"{text}: expected NAME=KIND:..., KIND one of "
                          f"{', '.join(KINDS)} (e.g. lr=log:1e-4:1e-1, optimizer=choice:adam,sgd)",
                          parameter="param")
    if kind == "choice":
        choices = tuple(v.strip() for v in rest.split(",") if v.strip())
        if len(choices) < 2 or len(set(choices)) != len(choices):
            raise ConfigError(f"{text}: give two or more different choices", parameter="param")
        return Param(name, kind, choices=choices)
    try:
        low, high = (float(v) for v in rest.split(":"))
    except ValueError:
        raise ConfigError(f"{text}: expected {kind}:LOW:HIGH", parameter="param") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"{text}: LOW must be below HIGH", parameter="param")
    if kind == "log" and low <= 0:
        raise ConfigError(f"{text}: a log range must be above 0", parameter="param")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise ConfigError(f"{text}: an int range takes whole numbers", parameter="param")
    return Param(name, kind, low, high)


def read_space(path: Path) -> list[Param]:
    """A JSON file ``{"lr": "log:1e-4:1e-1", ...}`` -> the space."""
    data = read_json(Path(path), DataError, parameter="space")
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise DataError(f"{path}: expected an object of NAME: \"KIND:...\" strings",
                        parameter="space")
    return [parse_param(f"{name}={spec}") for name, spec in data.items()]


def _owner(run: RunConfig, name: str) -> str:
    """"optim" or "task": the part of the run that has the setting ``name``."""
    for part in ("optim", "task"):
        if name in {f.name for f in fields(getattr(run, part))}:
            return part
    known = sorted(({f.name for f in fields(run.optim)} | {f.name for f in fields(run.task)})
                   - FIXED)
    raise ConfigError(f"{name}: not a setting of a {run.lab} run; choose from "
                      f"{', '.join(known)}", parameter="param")


def _field_type(part: Any, name: str) -> type | None:
    """The declared type of setting ``name`` (``X | None`` read as ``X``): the type a drawn
    value becomes, even where the default is None (``max_disparity``, ``align_corners``)."""
    hint = typing.get_type_hints(type(part)).get(name)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None -> X
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    kind = typing.get_origin(hint) or hint
    return kind if isinstance(kind, type) else None


def _convert(name: str, value: Any, part: Any) -> Any:
    """A drawn value as the setting's type: choices are text ("none", "true", "256x512")."""
    kind = _field_type(part, name)
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    text = value.strip() if isinstance(value, str) else value
    if kind is bool:
        if str(text).lower() not in ("true", "false"):
            raise ConfigError(f"{name}: {text!r} is not true or false", parameter="param")
        return str(text).lower() == "true"
    if kind is tuple:
        try:
            return tuple(int(v) for v in str(text).lower().replace("x", ",").split(","))
        except ValueError:
            raise ConfigError(f"{name}: {text!r} is not like 256x512", parameter="param") from None
    if kind in (int, float):
        try:
            number = float(text)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: {text!r} is not a number", parameter="param") from None
        if kind is int and number != int(number):
            raise ConfigError(f"{name}: {text!r} is not a whole number", parameter="param")
        return kind(number)
    return text


def check_space(space: list[Param], run: RunConfig, lab: Any = None) -> None:
    """Every name a setting the sweep may vary, once; every value the space can draw (each
    choice, both ends of a range: the rules are intervals) makes a run that the settings'
    rules and ``lab.check`` accept, so that no trial fails on its settings after others ran."""
    if not space:
        raise ConfigError("a sweep needs a search space: `param` NAME=KIND:... or `space` FILE")
    seen, seen_all = set(), {param.name for param in space}
    for param in space:
        if param.name in FIXED:
            raise ConfigError(f"{param.name}: fixed for a sweep (trials must stay "
                              "comparable); set it as an option instead", parameter="param")
        if param.name in seen:
            raise ConfigError(f"{param.name}: given twice", parameter="param")
        seen.add(param.name)
        part = getattr(run, _owner(run, param.name))
        if param.kind != "choice" and _field_type(part, param.name) not in (int, float):
            raise ConfigError(f"{param}: {param.name} is not a number; use "
                              f"{param.name}=choice:...", parameter="param")
        if param.kind == "float" and _field_type(part, param.name) is int:
            raise ConfigError(f"{param}: {param.name} is a whole number; use int:",
                              parameter="param")
        rule = rule_of(part, param.name)
        if param.kind != "choice" and rule is not None and rule.multiple:
            raise ConfigError(f"{param}: {param.name} must be {rule.words()}, which a range "
                              f"would not keep; use {param.name}=choice:...", parameter="param")
        for value in param.choices or (param.low, param.high):
            try:
                drawn = apply_params(run, {param.name: value})
                if lab is not None:
                    lab.check(drawn)
                    for item in lab.unused(drawn):  # the drawn value itself changes nothing
                        if item.name == param.name and item.decided_by not in seen_all:
                            raise item.refusal(value)
            except (TypeError, ValueError, CnnlabError) as exc:  # the message shows the value
                raise ConfigError(f"{param}: {exc}", parameter="param") from None
    if lab is not None:  # the base recipe's own settings that no trial would use
        try:
            refuse_unused(run, lab.unused(run), tuple(seen_all))
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in every trial of this sweep)") from None


def apply_params(run: RunConfig, params: dict[str, Any]) -> RunConfig:
    """``run`` with the drawn settings."""
    changes: dict[str, dict[str, Any]] = {"optim": {}, "task": {}}
    for name, value in params.items():
        part = _owner(run, name)
        changes[part][name] = _convert(name, value, getattr(run, part))
    return replace(run, optim=replace(run.optim, **changes["optim"]),
                   task=replace(run.task, **changes["task"]))


def baseline_params(space: list[Param], run: RunConfig) -> dict[str, Any] | None:
    """The base recipe's own values of the searched settings, if each lies in its range."""
    params = {}
    for param in space:
        value = getattr(getattr(run, _owner(run, param.name)), param.name)
        if param.kind == "choice":
            shown = ("none" if value is None else
                     "x".join(map(str, value)) if isinstance(value, tuple) else
                     str(value).lower() if isinstance(value, bool) else str(value))
            matches = [c for c in param.choices if c.lower() == shown.lower()]
            if not matches:
                return None
            params[param.name] = matches[0]
        elif value is None or not param.low <= value <= param.high:
            return None
        else:
            params[param.name] = int(value) if param.kind == "int" else float(value)
    return params


def open_study(folder: Path, direction: str, seed: int = 0, storage: str | None = None):
    """The sweep's study: created, or loaded to resume (journal file ``folder/study.journal``
    by default; any Optuna storage URL, e.g. sqlite:///sweep.db, with ``storage``)."""
    optuna = _optuna()
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / STUDY_FILE).exists() or storage is not None:
        seed = None  # joining or resuming: a process seeded like the others would repeat them
    if storage is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(folder / STUDY_FILE)))
    try:
        study = optuna.create_study(
            storage=storage, study_name="cnnlab", direction=direction, load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    except (ValueError, AssertionError, KeyError, TypeError) as exc:  # Optuna's journal reader
        if not (folder / STUDY_FILE).is_file():
            raise
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise DataError(f"{folder / STUDY_FILE}: the sweep's journal is damaged ({detail}); "
                        "move it aside to start this sweep afresh (the trial folders are "
                        "kept), or give another `out`") from None
    if study.direction.name.lower() != direction:
        raise ConfigError(f"{folder}: the sweep there {study.direction.name.lower()}s; this "
                          f"one would {direction}")
    return study


def _held_elsewhere(run_dir: Path) -> bool:
    """Whether another live process is training into ``run_dir`` (it holds the folder's lock,
    see RunDir.lock)."""
    try:
        import fcntl
    except ImportError:
        return False
    if not run_dir.is_dir():
        return False
    handle = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(handle)
    return False


def recover_interrupted(study, log: Callable[[str], None]) -> int:
    """Trials cut short, by Ctrl-C or by a process that is gone (killed, machine off), are
    drawn again first, with their settings (the base recipe's trial stays the baseline); a
    trial left running by a dead process becomes failed. Returns how many."""
    optuna = _optuna()
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    count = 0
    for trial in trials:
        if trial.number in retried:
            continue
        run_dir = trial.user_attrs.get("run_dir")
        if trial.state == state.RUNNING:
            if run_dir and _held_elsewhere(Path(run_dir)):
                continue  # another process is training it now
            study.tell(trial.number, state=state.FAIL, skip_if_finished=True)
        elif not (trial.state == state.FAIL and trial.user_attrs.get("interrupted")):
            continue
        attrs = {"retry_of": trial.number}
        if trial.user_attrs.get(BASELINE):
            attrs[BASELINE] = True
        study.enqueue_trial(trial.params, user_attrs=attrs)
        where = f" ({run_dir})" if run_dir else ""
        log(f"Trial {trial.number} was interrupted{where}; its settings are tried again")
        count += 1
    return count


class PruneOnEpoch:
    """fit's ``on_epoch``: reports the epoch's figure to the trial and stops it when the
    median rule says so."""

    def __init__(self, trial, key: str, log: Callable[[str], None]):
        self.trial, self.key, self.log = trial, key, log

    def __call__(self, row: dict) -> None:
        if self.key not in row:
            raise ConfigError(f"the sweep optimises {self.key}, which this run does not "
                              "report; it needs validation pairs")
        self.trial.report(row[self.key], row["epoch"])
        if self.trial.should_prune():
            self.log(f"  pruned after epoch {row['epoch']}: {self.key} {row[self.key]:.4g} "
                     "is worse than the median of earlier trials there")
            raise _optuna().TrialPruned()


def run_sweep(base: RunConfig, lab: Any, space: list[Param], folder: Path,
              trials: int | None = None, minutes: float | None = None,
              device: str = "auto", storage: str | None = None,
              log: Callable[[str], None] = print, train: Callable | None = None):
    """Run trials until ``trials`` have finished (completed or pruned, over every process
    and earlier sessions) or ``minutes`` have passed; returns the study."""
    optuna = _optuna()
    from cnnlab.engine.device import select_device
    from cnnlab.engine.lab import train_run

    if base.optim.amp == "auto":  # this machine's choice, for every trial alike, and written
        # into the definition: a process elsewhere that would choose otherwise is refused
        base = replace(base, optim=replace(base.optim, amp=lab.auto_amp(select_device(device))))
    lab.check_sweep(base)
    check_space(space, base, lab)
    if trials is None and minutes is None:
        raise ConfigError("give a budget: `trials` N and/or `minutes` M")
    key, direction = lab.objective
    study = open_study(folder, direction, base.optim.seed, storage)
    recipe = base.to_dict()
    for machine in lab.machine_settings:  # where the data is may differ between machines
        recipe[lab.name].pop(machine, None)
    definition = json.loads(json.dumps({"recipe": recipe, "space": [str(p) for p in space]}))
    saved = study.user_attrs.get("definition")
    if saved is None:
        study.set_user_attr("definition", definition)
    elif saved != definition:
        changed = [k for k in ("recipe", "space") if saved[k] != definition[k]]
        raise ConfigError(f"{folder}: holds a sweep with another "
                          f"{' and '.join(changed)}; its trials would not compare with these: "
                          "give the same options, or another `out`", parameter="out")
    recover_interrupted(study, log)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    if not study.trials:
        baseline = baseline_params(space, base)
        if baseline is not None:
            study.enqueue_trial(baseline, user_attrs={BASELINE: True})
        else:
            log("note: the base recipe lies outside the search space; no baseline trial")
    done = len(study.get_trials(deepcopy=False, states=finished))
    if trials is not None and done >= trials:
        log(f"{folder}: {done} trials already finished (of {trials} asked)")
        return study
    train = train or train_run

    def objective(trial) -> float:
        params = {param.name: param.suggest(trial) for param in space}
        run = apply_params(base, params)
        run_dir = folder / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in params.items())
        log(f"Trial {trial.number}: {shown}")
        try:
            results = train(run, lab, run_dir, device=device, log=lambda _m: None,
                            progress=False, on_epoch=PruneOnEpoch(trial, key, log), trial=True)
        except KeyboardInterrupt:  # Optuna records it as failed: say why
            trial.set_user_attr("interrupted", True)
            raise
        best = results["best"]
        if best is None or best["metric"] != key:
            raise ConfigError(f"the sweep optimises {key}, which this run does not report; "
                              "it needs validation pairs")
        trial.set_user_attr("epochs", results["epochs"])
        trial.set_user_attr("seconds", results["epoch_seconds_total"])
        figures = {k: v for k, v in results.items() if k.startswith("test_")
                   and isinstance(v, float)}  # rates and losses, not counts
        trial.set_user_attr("test", figures)
        log(f"  {key} {best['value']:.4g} (epoch {best['epoch']})"
            + "".join(f", {k} {v:.4g}" for k, v in figures.items()))
        return best["value"]

    callbacks = []
    if trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(trials, states=finished))
    study.optimize(objective, timeout=minutes * 60 if minutes else None, callbacks=callbacks,
                   catch=())
    return study
