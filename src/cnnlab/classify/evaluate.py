"""Evaluate a trained classifier: accuracy, per-class accuracy, confusion matrix (PNG + JSON)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnlab.classify.card import preprocess_of
from cnnlab.classify.data import Preprocess, TensorSplit
from cnnlab.classify.weights import load_model
from cnnlab.data.vision import get_spec, load_split
from cnnlab.engine.atomic import atomic_write, atomic_write_json, check_writable_folder
from cnnlab.engine.device import select_device
from cnnlab.errors import ConfigError


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
    from cnnlab.engine.plotting import pyplot

    plt = pyplot()

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
                        which: str = "best", out_dir: Path | None = None,
                        dataset: str | None = None) -> dict:
    """Test-set accuracy, per-class accuracy and confusion matrix of a checkpoint or registered
    weights; writes eval.json and confusion.png (next to a run's checkpoint by default)."""
    torch_device = select_device(device)
    model, card = load_model(checkpoint, torch_device, which)
    where = card.source["file"]
    dataset = dataset or card.training.get("dataset")
    if not dataset:
        raise ConfigError(f"{where}: the model card names no dataset; pass --dataset")
    classes = card.outputs["classes"]
    spec = get_spec(dataset)
    if list(spec.classes) != classes or spec.channels != card.preprocess["channels"]:
        def brief(names):
            return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise ConfigError(f"--dataset {dataset}: its classes ({brief(spec.classes)}; "
                          f"{spec.channels}-channel images) are not those {where} predicts "
                          f"({brief(classes)}; {card.preprocess['channels']} channel)")
    if out_dir is not None:
        out = check_writable_folder(out_dir, "--out")
    elif card.name:  # registered weights live in the package or a shared folder: not there
        out = check_writable_folder(Path("runs") / "eval" / card.name, "--out (default)")
    else:
        out = Path(where).parent
        try:
            check_writable_folder(out, "--checkpoint")
        except ConfigError as exc:  # a shared or read-only run: say how to evaluate it anyway
            raise ConfigError(f"{exc}; give --out DIR for eval.json and confusion.png") from None
    root = data_root if data_root is not None else card.training.get("data_root")
    images, labels = load_split(dataset, "test", root)
    split = TensorSplit(images, labels, torch_device)
    matrix = confusion_matrix(model, split, preprocess_of(card), len(classes))
    per_class = (matrix.diag().double() / matrix.sum(1).clamp(min=1)).tolist()
    label = card.name or Path(where).parent.name
    result = {
        "checkpoint": where, "weights": card.name,
        "dataset": dataset, "model": card.architecture,
        "accuracy": matrix.diag().sum().item() / matrix.sum().item(),
        "correct": int(matrix.diag().sum()), "count": int(matrix.sum()),
        "per_class_accuracy": dict(zip(classes, per_class)),
        "confusion_matrix": matrix.tolist(),
    }
    atomic_write_json(out / "eval.json", result)
    plot_confusion(matrix, tuple(classes), out / "confusion.png",
                   f"{card.architecture} ({label}) on {dataset}: "
                   f"{100 * result['accuracy']:.2f}%")
    result["confusion_png"] = str(out / "confusion.png")
    return result
