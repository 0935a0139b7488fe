"""A run directory: config.json, metrics.csv, curves.png and last/best checkpoints."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

from cnnlab.engine.atomic import atomic_write, atomic_write_json, atomic_write_text
from cnnlab.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None

# metric key -> axis label with its unit
AXIS_LABELS = {"loss": "loss", "acc": "accuracy (fraction)", "epe": "EPE (px)", "d1": "D1 (%)"}


class RunDir:
    """Paths and writers of one training run; every write is atomic."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def curves_path(self) -> Path:
        return self.path / "curves.png"

    def checkpoint(self, which: str) -> Path:
        return self.path / f"{which}.safetensors"

    @contextlib.contextmanager
    def lock(self, option: str = "out") -> Iterator[None]:
        """Hold the run directory for one training process: a second run into the same
        folder (or a second --resume of it) is refused instead of interleaving its
        checkpoints. The lock is the kernel's (flock on the folder itself), so a killed
        process never leaves a stale one and no lock file is left behind; a folder this
        creates is removed again if the run writes nothing. Where folders cannot be locked
        (Windows, some network file systems) the run goes unlocked."""
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        held = False
        folder = os.open(self.path, os.O_RDONLY) if fcntl is not None else None
        try:
            if folder is not None:
                try:
                    fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ConfigError(f"{self.path}: another cnnlab run is training into it; "
                                      "wait for it to finish or choose another folder",
                                      parameter=option) from None
                except OSError:  # a file system without folder locks (NFS): run unlocked
                    pass
            held = True
            yield
        finally:
            # only the holder removes: a refused run must not take the holder's new folder
            if held and created and not any(self.path.iterdir()):
                self.path.rmdir()  # nothing was written: leave no empty run behind
            if folder is not None:
                os.close(folder)

    def write_config(self, config: dict) -> None:
        atomic_write_json(self.config_path, config)

    def write_metrics(self, rows: list[dict]) -> None:
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_path, buffer.getvalue())

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.is_file():
            return []
        with open(self.metrics_path, newline="") as handle:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]

    def plot_curves(self, rows: list[dict], title: str = "") -> None:
        """curves.png: see ``curves_figure``."""
        if rows:
            figure = curves_figure(rows, title)
            atomic_write(self.curves_path,
                         lambda tmp: figure.savefig(tmp, format="png", dpi=100))


def curves_figure(rows: list[dict], title: str = ""):
    """One panel per quantity (loss, then each metric on its own axis and unit), train and
    validation together, whole-epoch ticks; a Figure outside pyplot (see engine.plotting)."""
    from matplotlib.ticker import MaxNLocator

    from cnnlab.engine.plotting import new_figure

    epochs = [r["epoch"] for r in rows]
    names = sorted({k.split("_", 1)[1] for k in rows[0] if k.startswith(("train_", "val_"))},
                   key=lambda name: (name != "loss", name))
    fig = new_figure(figsize=(4.2 * len(names) + 1, 4))
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names):
        for split in ("train", "val"):
            values = [r.get(f"{split}_{name}") for r in rows]
            if any(v not in (None, "") for v in values):
                ax.plot(epochs, values, marker="o", label=f"{split}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(AXIS_LABELS.get(name, name))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _number(text: str):
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value
