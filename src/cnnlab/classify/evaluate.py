"""Evaluate a trained classifier: accuracy, per-class accuracy, confusion matrix (PNG + JSON)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlab.classify.card import preprocess_of
from cnnlab.classify.choices import WHICH
from cnnlab.classify.data import Preprocess, TensorSplit
from cnnlab.classify.weights import load_model
from cnnlab.data.vision import get_spec, load_split
from cnnlab.engine.atomic import atomic_write_json, check_writable_folder
from cnnlab.engine.card import ModelCard
from cnnlab.engine.device import select_device
from cnnlab.engine.options import effective_when, when
from cnnlab.engine.rules import checked
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


def confusion_figure(matrix: torch.Tensor, classes: tuple[str, ...] | list[str], title: str):
    """Counts with rows = true class, columns = predicted, each cell labelled; a Figure
    outside pyplot (see engine.plotting)."""
    from cnnlab.engine.plotting import new_figure

    n = len(classes)
    fig = new_figure(figsize=(1.6 + 0.7 * n, 1.0 + 0.6 * n))
    ax = fig.subplots()
    shown = ax.imshow(matrix.numpy(), cmap="Blues")
    fig.colorbar(shown, ax=ax, label="images", fraction=0.046, pad=0.04)
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
    return fig


@dataclass
class Evaluation:
    """A classifier's answers on a labelled set: accuracy, confusion matrix and its mistakes.
    In a notebook it shows its confusion matrix."""

    title: str  # "LeNet on fashion-mnist test"
    classes: list[str]
    labels: torch.Tensor  # (N,) true classes
    predicted: torch.Tensor  # (N,) most probable classes
    confidence: torch.Tensor  # (N,) probability of the predicted class
    images: torch.Tensor  # (N, C, H, W) uint8, as stored (for pictures of the mistakes)

    @property
    def count(self) -> int:
        return len(self.labels)

    @property
    def correct(self) -> int:
        return int((self.predicted == self.labels).sum())

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1)

    @property
    def confusion_matrix(self) -> torch.Tensor:
        """(classes, classes) counts, rows = true class, columns = predicted class."""
        n = len(self.classes)
        index = self.labels.long() * n + self.predicted.long()
        return torch.bincount(index, minlength=n * n).view(n, n)

    @property
    def per_class(self) -> dict[str, float]:
        """Accuracy of each true class."""
        matrix = self.confusion_matrix
        return dict(zip(self.classes, (matrix.diag().double()
                                       / matrix.sum(1).clamp(min=1)).tolist()))

    def confusion(self):
        """The confusion matrix as a picture (counts in every cell, a colour scale)."""
        from cnnlab.engine.plotting import Picture

        title = f"{self.title}: {100 * self.accuracy:.2f}%"
        return Picture(confusion_figure(self.confusion_matrix, self.classes, title), title)

    def mistakes(self, n: int = 16):
        """The ``n`` most confident mistakes (true -> predicted, probability), as fastai's
        plot_top_losses shows them: where the model is sure and wrong."""
        from cnnlab.classify.gallery import gallery

        wrong = (self.predicted != self.labels).nonzero().flatten()
        order = wrong[self.confidence[wrong].argsort(descending=True)][:n]
        captions = [f"{self.classes[int(self.labels[i])]} → {self.classes[int(self.predicted[i])]}"
                    f" {100 * float(self.confidence[i]):.0f}%" for i in order]
        return gallery(self.images[order], captions,
                       f"{self.title}: {len(order)} most confident of {len(wrong)} mistakes "
                       "(true → predicted)", colors=["firebrick"] * len(order))

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "correct": self.correct, "count": self.count,
                "per_class_accuracy": self.per_class,
                "confusion_matrix": self.confusion_matrix.tolist()}

    def __repr__(self) -> str:
        worst = sorted(self.per_class.items(), key=lambda item: item[1])[:3]
        return (f"Evaluation({self.title}: accuracy {self.correct}/{self.count} "
                f"({100 * self.accuracy:.2f}%); weakest classes "
                + ", ".join(f"{name} {100 * value:.1f}%" for name, value in worst) + ")")

    def _repr_png_(self) -> bytes:
        return self.confusion().png()


@torch.no_grad()
def evaluate_network(model: nn.Module, card: ModelCard, images: torch.Tensor,
                     labels: torch.Tensor, title: str, batch_size: int = 1000) -> Evaluation:
    """Run ``model`` (preprocessing as its card says) over uint8 ``images``."""
    device = next(model.parameters()).device
    preprocess = preprocess_of(card)
    was_training = model.training
    model.eval()
    predicted, confidence = [], []
    try:
        for start in range(0, len(labels), batch_size):
            batch = images[start:start + batch_size].to(device)
            probabilities = torch.softmax(model(preprocess(batch)).float(), dim=1)
            best = probabilities.max(1)
            predicted.append(best.indices.cpu())
            confidence.append(best.values.cpu())
    finally:
        model.train(was_training)
    return Evaluation(title, list(card.outputs["classes"]), labels.cpu(), torch.cat(predicted),
                      torch.cat(confidence), images.cpu())


def check_dataset(card: ModelCard, dataset: str | None, where: str) -> str:
    """The dataset to evaluate on (the card's by default), refused in one line when its
    classes or channels are not the model's."""
    dataset = dataset or card.training.get("dataset")
    if not dataset:
        raise ConfigError(f": the model card of {where} names no dataset; give one",
                          parameter="dataset")
    classes = card.outputs["classes"]
    spec = get_spec(dataset)
    if list(spec.classes) != classes or spec.channels != card.preprocess["channels"]:
        def brief(names):
            return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise ConfigError(f"{dataset}: its classes ({brief(spec.classes)}; "
                          f"{spec.channels}-channel images) are not those {where} predicts "
                          f"({brief(classes)}; {card.preprocess['channels']} channel)",
                          parameter="dataset")
    return dataset


def picks_a_run_folder(name_or_path: object) -> bool:
    """Whether ``name_or_path`` names a run folder, or nothing yet (its "no such run
    directory" comes first): neither registered weights nor a file, where ``which`` and
    ``weights_root`` decide nothing."""
    from cnnlab.classify.weights import CLASSIFY_WEIGHTS

    return not (name_or_path in CLASSIFY_WEIGHTS
                or Path(os.path.expanduser(os.fspath(name_or_path))).is_file())


@checked(which=WHICH)
@effective_when(which=when(lambda v: picks_a_run_folder(v["checkpoint"]),
                          "picks a run directory's checkpoint (best or last); `checkpoint` "
                          "names registered weights or a file, so it changes nothing"))
def evaluate_classifier(checkpoint: str | Path, data_root=None, device: str = "auto",
                        which: str | None = None, out: Path | None = None,
                        dataset: str | None = None) -> dict:
    """Test-set accuracy, per-class accuracy and confusion matrix of a checkpoint or registered
    weights; writes eval.json and confusion.png (next to a run's checkpoint by default)."""
    torch_device = select_device(device)
    model, card = load_model(checkpoint, torch_device, which or "best")
    where = card.source["file"]
    dataset = check_dataset(card, dataset, where)
    if out is not None:
        out = check_writable_folder(out, "out")
    elif card.name:  # registered weights live in the package or a shared folder: not there
        out = check_writable_folder(Path("runs") / "eval" / card.name, "out")
    else:
        out = Path(where).parent
        try:
            check_writable_folder(out, "checkpoint")
        except ConfigError as exc:  # a shared or read-only run: say how to evaluate it anyway
            raise ConfigError(f"{exc.detail}; give an `out` folder for eval.json and confusion.png",
                              parameter=exc.parameter) from None
    root = data_root if data_root is not None else card.training.get("data_root")
    images, labels = load_split(dataset, "test", root)
    label = card.name or Path(where).parent.name
    evaluation = evaluate_network(model.to(torch_device), card, images, labels,
                                  f"{card.architecture} ({label}) on {dataset}")
    result = {"checkpoint": where, "weights": card.name, "dataset": dataset,
              "model": card.architecture, **evaluation.to_dict()}
    atomic_write_json(out / "eval.json", result)
    evaluation.confusion().save(out / "confusion.png")
    result["confusion_png"] = str(out / "confusion.png")
    return result
