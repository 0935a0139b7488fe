"""One training recipe for every lab: a ``Lab`` supplies the parts, ``train_run`` runs them.

The steps every lab shares (device, seeding per rank, model preparation and DDP, config.json,
the loop, results.json) live here once; a lab says only what differs: how its settings resolve,
its model card and network, its data as a loop ``Task``, and what its results are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from cnnlab.engine.atomic import atomic_write_json, check_writable_folder
from cnnlab.engine.card import ModelCard
from cnnlab.engine.config import RunConfig, Unused, read_config_file, refuse_unused
from cnnlab.engine.device import (
    check_amp,
    check_compile,
    prepare_model,
    seed_everything,
    select_device,
)
from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo, all_true
from cnnlab.engine.loop import FitResult, Task, fit
from cnnlab.engine.rundir import RunDir
from cnnlab.errors import ConfigError


class Lab(Protocol):
    """What a lab supplies to ``train_run``."""

    name: str  # "classify", "stereo": config.json's section and the card's lab
    config_class: type  # the dataclass of the lab's task settings
    channels_last: bool  # whether prepare_model converts the whole network to channels_last
    # task settings that describe the machine, not the recipe: left out of model cards, and
    # free to change when a run is resumed elsewhere
    machine_settings: tuple[str, ...]

    def upgrade(self, section: dict[str, Any]) -> dict[str, Any]:
        """An older config.json's task section in today's field names."""
        ...

    def check(self, run: RunConfig) -> None:
        """Cheap checks of a run's settings beyond each value's rule (no data, no weights
        read): ``resolve`` calls it, and a sweep calls it on every value its space can draw."""
        ...

    def unused(self, run: RunConfig) -> list[Unused]:
        """The settings a new run was given that it would not use (refused, not ignored)."""
        ...

    def auto_amp(self, device: torch.device) -> str:
        """What ``amp`` "auto" means for this lab on ``device``: a precision the lab has
        checked trains as well as fp32 there, else "none"."""
        ...

    def check_sweep(self, run: RunConfig) -> None:
        """A sweep's base recipe: refused when trials would be chosen on the test set."""
        ...

    def resolve(self, run: RunConfig, resume: bool, log: Callable[[str], None]
                ) -> tuple[RunConfig, Any]:
        """The run with its defaults filled in (cheap checks here, before any data is read) and
        an opaque value for ``build_model`` (e.g. the weights to start from)."""
        ...

    def card(self, run: RunConfig) -> ModelCard: ...

    def build_model(self, card: ModelCard, start: Any, log: Callable[[str], None]
                    ) -> nn.Module: ...

    def build_task(self, run: RunConfig, card: ModelCard, device: torch.device, info: DistInfo,
                   download: bool, log: Callable[[str], None]) -> Task: ...

    def title(self, run: RunConfig) -> str: ...

    # what a sweep optimises: a key of fit's metrics rows and "maximize" or "minimize"
    objective: tuple[str, str]

    def results(self, run: RunConfig, fitted: FitResult, task: Task, model: nn.Module,
                device: torch.device, info: DistInfo, log: Callable[[str], None]
                ) -> dict[str, Any]: ...


def read_run_config(path: str | Path, lab: Lab) -> RunConfig:
    """The recipe saved in a run directory (or a config.json file), for ``lab``."""
    where = Path(path) / "config.json" if Path(path).is_dir() else Path(path)
    return RunConfig.from_dict(read_config_file(path), lab.name, lab.config_class, str(where),
                               lab.upgrade)


def recipe_of(run: RunConfig, lab: Lab) -> dict[str, Any]:
    """What a model card records of the run that trained it: the settings without the
    machine's (data folders, worker count)."""
    recipe = run.to_dict()
    del recipe["lab"]
    for key in lab.machine_settings:
        recipe[lab.name].pop(key, None)
    return recipe


def settled_amp(run: RunConfig, saved: RunConfig) -> RunConfig:
    """``run`` with amp "auto" read as ``saved``'s: a saved run records what "auto" chose, so
    a recipe given with the default is the same recipe as the run it would continue."""
    if run.optim.amp != "auto":
        return run
    return replace(run, optim=replace(run.optim, amp=saved.optim.amp))


def resumed_config(saved: RunConfig, lab: Lab, epochs: int | None = None,
                   machine: dict[str, Any] | None = None) -> RunConfig:
    """A saved run's recipe for ``--resume``: ``epochs`` may change (to extend a run) and so
    may the machine settings; the rest is the run's own, so a resumed run cannot switch
    optimiser or data silently."""
    unknown = sorted(set(machine or {}) - set(lab.machine_settings))
    if unknown:
        raise ConfigError(f"{', '.join(unknown)} cannot change when a run is resumed")
    changes = {k: v for k, v in (machine or {}).items() if v is not None}
    optim = saved.optim if epochs is None else replace(saved.optim, epochs=epochs)
    return RunConfig(saved.lab, replace(saved.task, **changes), optim)


def train_run(run: RunConfig, lab: Lab, out: str | Path, resume: bool = False,
              device: str = "auto", info: DistInfo = SINGLE_PROCESS,
              log: Callable[[str], None] = print, progress: bool = True,
              stop_after: int | None = None, download: bool = False,
              on_epoch: Callable[[dict], None] | None = None, trial: bool = False
              ) -> dict[str, Any]:
    """Train ``run`` into the run directory ``out`` (continuing it exactly with ``resume``);
    returns the lab's results, also written to ``out/results.json``. ``on_epoch`` sees each
    epoch's metrics (see ``fit``). A new run given settings it would not use is refused,
    unless it is a sweep's ``trial`` (whose draws may leave a base setting unused)."""
    if run.lab != lab.name:
        raise ConfigError(f"a {run.lab} run cannot be trained by the {lab.name} lab")
    run.optim.validate()
    option = "resume" if resume else "out"  # the parameter that names the folder
    run_dir = RunDir(check_writable_folder(out, option))
    torch_device = select_device(device)
    if run.optim.amp == "auto":  # resolved before anything reads it: config.json keeps it
        run = (settled_amp(run, read_run_config(run_dir.path, lab)) if resume  # the run's own
               else replace(run, optim=replace(run.optim, amp=lab.auto_amp(torch_device))))
    with contextlib.ExitStack() as held:
        refused: Exception | None = None
        if info.is_main:  # rank 0 writes the run, so it holds it; every rank stops if refused
            try:
                held.enter_context(run_dir.lock(option))
            except Exception as exc:  # any failure: the other ranks must not wait for rank 0
                refused = exc
        if not all_true(refused is None, info, torch_device):
            raise refused or ConfigError(f"{option} {run_dir.path}: refused by rank 0")
        if not (resume or trial):  # a resumed run keeps its recipe, checked when it started
            lab.check(run)  # a wrong name before "would change nothing" about its companions
            refuse_unused(run, lab.unused(run))
            check_amp(torch_device, run.optim.amp)
        return _train_held(run, lab, run_dir, resume, torch_device, info, log, progress,
                           stop_after, download, on_epoch)


def _train_held(run: RunConfig, lab: Lab, run_dir: RunDir, resume: bool,
                torch_device: torch.device, info: DistInfo, log: Callable[[str], None],
                progress: bool, stop_after: int | None, download: bool,
                on_epoch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """``train_run`` once its run directory is held (checked here, not before, so that two
    runs cannot both pass the check)."""
    if not resume and run_dir.checkpoint("last").exists():
        raise ConfigError(f"{run_dir.path}: already holds a run; continue it with `resume` or "
                          "choose another folder", parameter="out")
    if resume:
        trained_by = read_config_file(run_dir.path).get("world_size", 1)
        if trained_by != info.world_size:
            batch = run.optim.batch_size
            raise ConfigError(
                f"{run_dir.path}: trained by {trained_by} process(es), resumed by "
                f"{info.world_size}: the global batch would change from {trained_by * batch} "
                f"to {info.world_size * batch}; resume with {trained_by} process(es)",
                parameter="resume")
    if run.optim.compile:
        check_compile(torch_device)
    seed_everything(run.optim.seed + info.rank)
    run, start = lab.resolve(run, resume, log)
    card = lab.card(run)
    network = lab.build_model(card, start, log)
    task = lab.build_task(run, card, torch_device, info, download, log)
    model = prepare_model(network, torch_device, run.optim.compile, lab.channels_last, info)
    saved = {**run.to_dict(), "world_size": info.world_size, "title": lab.title(run)}
    fitted = fit(model, task, run.optim, run_dir, saved, torch_device, resume, info, log,
                 progress, stop_after=stop_after, card=card, on_epoch=on_epoch)
    results = {"epochs": len(fitted.history), "best": fitted.best,
               # wall time of the epochs, per-epoch validation included
               "epoch_seconds_total": round(sum(r["seconds"] for r in fitted.history), 2),
               **lab.results(run, fitted, task, model, torch_device, info, log)}
    if info.is_main:
        atomic_write_json(run_dir.path / "results.json", results)
    return results
