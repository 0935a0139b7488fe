"""What the labs' notebook ``train`` functions share: keyword settings checked against the
recipe's fields, a fresh run folder, live curves, and the ``RunFolder`` they return."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab.engine.config import read_config_file
from cnnlab.engine.live import LiveCurves, in_notebook
from cnnlab.engine.plotting import Picture
from cnnlab.engine.rundir import RunDir, curves_figure
from cnnlab.errors import ConfigError

# names other libraries use for the same settings (Keras, Hugging Face, d2l)
ALIASES = {"learning_rate": "lr", "lrate": "lr", "num_epochs": "epochs", "batch": "batch_size",
           "optim": "optimizer", "scheduler": "schedule", "wd": "weight_decay",
           "num_train": "limit", "max_images": "limit", "precision": "amp"}


def split_settings(settings: dict[str, Any], *groups: tuple[str, ...]
                   ) -> list[dict[str, Any]]:
    """``settings`` divided among ``groups`` of field names; a name in none is a one-line
    error that suggests the right one."""
    known = [name for group in groups for name in group]
    unknown = sorted(set(settings) - set(known))
    if unknown:
        name = unknown[0]
        inside = sorted((k for k in known if k in name or name in k), key=len, reverse=True)
        close = ([ALIASES[name]] if name in ALIASES else inside[:1]
                 or difflib.get_close_matches(name, known, n=1))
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"is not a setting of train(); {hint}settings: {', '.join(known)}",
                          parameter=name)
    return [{k: v for k, v in settings.items() if k in group} for group in groups]


def absolute(path: str | os.PathLike | None) -> str | None:
    """A folder saved with a run: absolute, as text (a run resumes from anywhere)."""
    return None if path is None else str(Path(path).expanduser().resolve())


def fresh_run_folder(name: str, root: str | os.PathLike = "runs") -> Path:
    """``runs/NAME``, or ``runs/NAME-2``, ``-3``... : the first that holds no run yet."""
    root = Path(root)
    for index in range(1, 10_000):
        path = root / (name if index == 1 else f"{name}-{index}")
        if not (path / "config.json").exists() and not RunDir(path).checkpoint("last").exists():
            return path
    raise ConfigError(f"{root}: no free run folder name for {name}", parameter="out")


def default_run_folder(default: str | os.PathLike, log: Callable[[str], None]) -> Path:
    """A new run's folder when none is given: ``default``, or ``default-2``... once that holds
    a run, so the same command runs again (under torchrun every process must agree on the
    folder before any exists: there ``default`` is used as it is)."""
    default = Path(default)
    if os.environ.get("WORLD_SIZE", "1") != "1":
        return default
    out = fresh_run_folder(default.name, default.parent)
    if out != default:
        log(f"note: {default} holds a run; this one goes into {out} (`resume` {default} "
            "continues that one)")
    return out


def run_folder(out: str | os.PathLike | None, resume: bool, name: str) -> Path:
    """Where a run goes: ``out``, else a fresh folder (resuming needs ``out``)."""
    if out is not None:
        return Path(out)
    if resume:
        raise ConfigError("needs the run folder to continue (out=...)", parameter="resume")
    return fresh_run_folder(name)


def check_resumable(run: Any, lab: Any, out: Path) -> None:
    """A run resumed from Python must be the one in ``out``: its recipe (all but the number
    of epochs and the machine's folders) as saved there, else a one-line error naming what
    differs (resuming with other settings would not continue that run exactly)."""
    from cnnlab.engine.lab import read_run_config, recipe_of, settled_amp

    saved_run = read_run_config(out, lab)
    saved = recipe_of(saved_run, lab)
    given = recipe_of(settled_amp(lab.resolve(run, True, lambda line: None)[0], saved_run),
                      lab)  # defaults filled
    for recipe in (saved, given):
        recipe["optim"].pop("epochs")
    differ = sorted(f"{key}" for part in ("optim", lab.name)
                    for key in set(saved[part]) | set(given[part])
                    if saved[part].get(key) != given[part].get(key))
    if differ:
        raise ConfigError(f"{out} was trained with other {', '.join(differ)}; give the settings "
                          "it was trained with (its config.json) to continue it exactly",
                          parameter="resume")


def live_curves(live: bool | None, title: str, out: Path, resume: bool) -> LiveCurves | None:
    """Curves redrawn after each epoch where asked (default: in a notebook)."""
    if not (live if live is not None else in_notebook()):
        return None
    return LiveCurves(title, RunDir(out).read_metrics() if resume else None)


class RunFolder:
    """A training run's folder: ``history`` (a row per epoch), ``results``, ``curves()``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def history(self) -> list[dict]:
        return RunDir(self.path).read_metrics()

    @property
    def results(self) -> dict[str, Any]:
        path = self.path / "results.json"
        return read_config_file(path) if path.is_file() else {}

    @property
    def checkpoint(self) -> Path:
        """The last epoch's checkpoint (weights, optimizer state and model card)."""
        return RunDir(self.path).checkpoint("last")

    def curves(self) -> Picture:
        """Loss and metrics per epoch, training and validation."""
        rows = self.history
        if not rows:
            raise ConfigError(f"{self.path}: no epoch finished yet", parameter="run")
        return Picture(curves_figure(rows, self.path.name), self.path.name)

    def summary(self) -> str:
        """'N epoch(s)' and the run's headline figure."""
        return f"{len(self.history)} epoch(s)"

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.path}': {self.summary()})"

    def _repr_png_(self) -> bytes | None:
        return self.curves().png() if self.history else None


def compare_runs(runs: list[RunFolder], metric: str, title: str = "") -> Picture:
    """One panel: ``metric`` (a metrics.csv column, e.g. "val_acc") per epoch, a line per run,
    labelled by its folder's name."""
    from matplotlib.ticker import MaxNLocator

    from cnnlab.engine.plotting import new_figure
    from cnnlab.engine.rundir import AXIS_LABELS

    if not runs:
        raise ConfigError("is empty; give the runs to compare", parameter="runs")
    fig = new_figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for run in runs:
        rows = run.history
        if rows and metric not in rows[0]:
            raise ConfigError(f"{metric!r} is not a column of {run.path.name}'s metrics "
                              f"({', '.join(rows[0])})", parameter="metric")
        ax.plot([r["epoch"] for r in rows], [r[metric] for r in rows], marker="o",
                label=run.path.name)
    split, _, name = metric.partition("_")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{split} {AXIS_LABELS.get(name, name)}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{metric} per epoch")
    fig.tight_layout()
    return Picture(fig, title or metric)
