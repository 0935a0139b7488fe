"""A run directory: config.json, metrics.csv, curves.png and last/best checkpoints."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cnnlab.engine.atomic import atomic_write, atomic_write_json, atomic_write_text


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
        """Loss curves (train/val) on the left, the other metrics on the right, per epoch."""
        if not rows:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] for r in rows]
        metric_names = sorted({k.split("_", 1)[1] for k in rows[0]
                               if k.startswith(("train_", "val_")) and k != "train_loss"
                               and k != "val_loss"})
        fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
        for split in ("train", "val"):
            values = [r.get(f"{split}_loss") for r in rows]
            if any(v not in (None, "") for v in values):
                ax_loss.plot(epochs, values, marker="o", label=f"{split} loss")
            for name in metric_names:
                values = [r.get(f"{split}_{name}") for r in rows]
                if any(v not in (None, "") for v in values):
                    ax_metric.plot(epochs, values, marker="o", label=f"{split} {name}")
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("loss")
        ax_metric.set_xlabel("epoch")
        ax_metric.set_ylabel(", ".join(metric_names))
        for ax in (ax_loss, ax_metric):
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        atomic_write(self.curves_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        plt.close(fig)


def _number(text: str):
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value
