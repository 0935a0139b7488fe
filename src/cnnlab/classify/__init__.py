"""The classification lab's public face: train any network on MNIST, Fashion-MNIST or
CIFAR-10, load trained weights, predict and evaluate.

    run = cnnlab.classify.train(MyNet(), "fashion-mnist", epochs=5, limit=5000)
    run.evaluate().mistakes(16)
    net = cnnlab.classify.load(run.path, model=MyNet)

Everything outside ``__all__`` may change without notice.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from cnnlab.classify.classifier import Classifier, load
    from cnnlab.classify.evaluate import Evaluation
    from cnnlab.classify.predict import Predictions
    from cnnlab.classify.run import Run, compare, train

__all__ = ["Classifier", "Evaluation", "Predictions", "Run", "compare", "create_model", "dataset",
           "load", "models", "train"]


# where each public name lives: imported when first used, so that importing the package (the
# command line's --help, its torch-free ``choices``) loads no torch, and inference (load,
# predict, evaluate) never imports the training code
_PUBLIC = {"Classifier": "classifier", "load": "classifier", "Evaluation": "evaluate",
           "Predictions": "predict", "train": "run", "Run": "run", "compare": "run"}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module = importlib.import_module(f"cnnlab.classify.{_PUBLIC[name]}")
        globals()[name] = value = getattr(module, name)  # found directly from now on
        return value
    raise AttributeError(f"module 'cnnlab.classify' has no attribute {name!r}")


def models() -> dict[str, str]:
    """The registered networks: name -> one-line description (with the input size)."""
    from cnnlab.classify.networks.registry import MODELS

    return {name: f"{entry.description} ({entry.input_size or 'dataset'} px input)"
            for name, entry in MODELS.items()}


def create_model(name: str, dataset: str = "fashion-mnist", **options: Any) -> nn.Module:
    """An untrained registered network sized for ``dataset``'s channels and classes."""
    from cnnlab.classify.networks import create_model as build
    from cnnlab.data.vision import get_spec

    spec = get_spec(dataset)
    return build(name, in_channels=spec.channels, num_classes=len(spec.classes), **options)


def dataset(name: str, split: str = "train", *, data_root: str | os.PathLike | None = None,
            limit: int | None = None, download: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, C, H, W) uint8, labels (N,) int64) of a dataset's split, decoded once
    (``limit``: its first N images)."""
    from cnnlab.classify.data import first
    from cnnlab.data.vision import load_split

    return first(load_split(name, split, data_root, download), limit, "limit")
