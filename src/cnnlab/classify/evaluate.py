"""Evaluate a trained classifier: accuracy, per-class accuracy, confusion matrix (PNG + JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlab.classify.data import Preprocess, TensorSplit
from cnnlab.classify.train import ClassifyConfig, build_model, build_preprocess
from cnnlab.data.vision import VisionSpec, get_spec, load_split
from cnnlab.engine.atomic import atomic_write, atomic_write_json
from cnnlab.engine.checkpoint import load_checkpoint, load_model_weights, resolve_checkpoint
from cnnlab.engine.device import select_device
from cnnlab.errors import CheckpointError


@dataclass
class LoadedClassifier:
    model: nn.Module
    config: ClassifyConfig
    spec: VisionSpec
    preprocess: Preprocess
    checkpoint: Path


def load_classifier(path: str | Path, device: torch.device, which: str = "best"
                    ) -> LoadedClassifier:
    checkpoint = resolve_checkpoint(path, which)
    ckpt = load_checkpoint(checkpoint, map_location=device)
    meta_config = ckpt["metadata"].get("config", {})
    if meta_config.get("lab") != "classify":
        raise CheckpointError(f"{checkpoint}: not a classification checkpoint")
    config = ClassifyConfig.from_dict(meta_config["classify"])
    spec = get_spec(config.dataset)
    model = build_model(config, spec)
    load_model_weights(model, ckpt["model"], checkpoint)
    model.to(device).eval()
    return LoadedClassifier(model, config, spec, build_preprocess(config, spec), checkpoint)


@torch.no_grad()
def confusion_matrix(model: nn.Module, split: TensorSplit, preprocess: Preprocess,
                     num_classes: int, batch_size: int = 1000) -> torch.Tensor:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted class."""
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for images, labels in split.batches(batch_size, preprocess):
        predicted = model(images).argmax(1)
        index = (labels * num_classes + predicted).cpu()
        matrix += torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)
    return matrix


def plot_confusion(matrix: torch.Tensor, classes: tuple[str, ...], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.8 + 0.6 * n))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max().item() / 2
    for i in range(n):
        for j in range(n):
            value = int(matrix[i, j])
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                    color="white" if value > threshold else "black")
    ax.set_title(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def evaluate_classifier(checkpoint: str | Path, data_root=None, device: str = "auto",
                        which: str = "best", out_dir: Path | None = None) -> dict:
    """Test-set accuracy, per-class accuracy and confusion matrix; writes eval.json and PNG."""
    torch_device = select_device(device)
    loaded = load_classifier(checkpoint, torch_device, which)
    root = data_root if data_root is not None else loaded.config.data_root
    images, labels = load_split(loaded.config.dataset, "test", root)
    split = TensorSplit(images, labels, torch_device)
    matrix = confusion_matrix(loaded.model, split, loaded.preprocess, len(loaded.spec.classes))
    per_class = (matrix.diag().double() / matrix.sum(1).clamp(min=1)).tolist()
    result = {
        "checkpoint": str(loaded.checkpoint),
        "dataset": loaded.config.dataset, "model": loaded.config.model,
        "accuracy": matrix.diag().sum().item() / matrix.sum().item(),
        "correct": int(matrix.diag().sum()), "count": int(matrix.sum()),
        "per_class_accuracy": dict(zip(loaded.spec.classes, per_class)),
        "confusion_matrix": matrix.tolist(),
    }
    out = Path(out_dir) if out_dir else loaded.checkpoint.parent
    atomic_write_json(out / "eval.json", result)
    plot_confusion(matrix, loaded.spec.classes, out / "confusion.png",
                   f"{loaded.config.model} on {loaded.config.dataset}: "
                   f"{100 * result['accuracy']:.2f}%")
    result["confusion_png"] = str(out / "confusion.png")
    return result
