"""Model cards of classifiers: written by training, read by eval and predict.

The card holds everything inference needs (architecture, input channels and sizes, mean/std,
class names), so a checkpoint is usable without its dataset or its training configuration.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnlab.classify.data import Preprocess
from cnnlab.classify.networks import create_model
from cnnlab.classify.networks.registry import model_input_size
from cnnlab.data.vision import get_spec
from cnnlab.engine.card import ModelCard, build_network
from cnnlab.errors import CheckpointError, ConfigError

# what each dataset's images look like, for the card's readers (and predict's inversion rule)
DATA_DESCRIPTIONS = {
    "mnist": "MNIST training set (60,000 handwritten digits, 28x28 grey)",
    "fashion-mnist": "Fashion-MNIST training set (60,000 Zalando article images, 28x28 grey)",
    "cifar10": "CIFAR-10 training set (50,000 photographs, 32x32 RGB)",
}


def classifier_card(dataset: str, model: str, model_kwargs: dict[str, Any],
                    image_size: int | None = None, training: dict[str, Any] | None = None,
                    module: str | None = None) -> ModelCard:
    """The card of ``model`` trained on ``dataset`` (a registered dataset name): a registry
    name, or with ``module`` the class name of a network defined outside the registry."""
    spec = get_spec(dataset)
    size = (image_size or spec.size) if module else model_input_size(model, spec.size,
                                                                      image_size)
    return ModelCard(
        lab="classify", architecture=model, module=module,
        kwargs={"in_channels": spec.channels, "num_classes": len(spec.classes), **model_kwargs},
        preprocess={
            "channels": spec.channels,
            "data_size": spec.size,  # images are brought to the training data's size first
            "size": size,  # then to the model's
            "scale": "uint8 / 255",
            "mean": list(spec.mean), "std": list(spec.std),
            # MNIST-style sets are light objects on black: predict inverts light backgrounds
            "background": "dark" if spec.channels == 1 else "any",
        },
        outputs={"classes": list(spec.classes)},
        training={"data": DATA_DESCRIPTIONS.get(dataset, dataset), "dataset": dataset,
                  **(training or {})})


def build_classifier(card: ModelCard, where: str | None = None) -> nn.Module:
    """The untrained classifier a card describes (``where``: the file, for errors)."""
    return build_network(card, "classify", create_model, where)


def check_input_size(model: nn.Module, card: ModelCard) -> None:
    """A one-line error, before any data is read, when the network cannot take the card's
    input or does not give one score per class (one forward pass of a blank image in eval
    mode): a student's shape mistake is caught in a second, not after loading the data."""
    pre = card.preprocess
    shape = (1, pre["channels"], pre["size"], pre["size"])
    classes = card.kwargs["num_classes"]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(torch.zeros(shape, device=_device_of(model)))
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[0][:200]
        if card.module is None:
            raise ConfigError(f"{pre['size']}: too small for {card.architecture} ({detail})",
                              parameter="image_size") from None
        raise ConfigError(f"{card.architecture} fails on a batch of shape {shape}: {detail}",
                          parameter="model") from None
    finally:
        model.train(was_training)
    if not (torch.is_tensor(output) and tuple(output.shape) == (1, classes)):
        got = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
        raise ConfigError(f"{card.architecture} gives {got} for a batch of shape {shape}; "
                          f"expected (1, {classes}): one score per class",
                          parameter="model")


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def validated(card: ModelCard, where: str) -> ModelCard:
    """``card`` if inference can use it, else a one-line error naming ``where``: a
    hand-edited or foreign card must not fail later with a traceback."""
    pre = card.preprocess
    problems = [f"preprocess {key}" for key in ("channels", "data_size", "size")
                if not (isinstance(pre.get(key), int) and pre[key] > 0)]
    channels = pre.get("channels")
    for key in ("mean", "std"):
        values = pre.get(key)
        if not (isinstance(values, list) and values and all(
                isinstance(v, (int, float)) and v == v for v in values)
                and len(values) in (1, channels)) or (key == "std" and 0 in values):
            problems.append(f"preprocess {key}")
    classes = card.outputs.get("classes")
    if not isinstance(classes, list) or len(classes) != card.kwargs.get("num_classes"):
        problems.append("class names (one per num_classes)")
    if problems:
        raise CheckpointError(f"{where}: the model card's {', '.join(problems)} "
                              f"{'is' if len(problems) == 1 else 'are'} missing or invalid")
    return card


def preprocess_of(card: ModelCard) -> Preprocess:
    """uint8 images -> model input, as a (validated) card says."""
    pre = card.preprocess
    return Preprocess(tuple(pre["mean"]), tuple(pre["std"]), pre["size"], pre["channels"])
