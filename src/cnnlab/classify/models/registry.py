"""Name -> constructor, default input size and a one-line description."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnlab.classify.models.alexnet import alexnet
from cnnlab.classify.models.googlenet import googlenet
from cnnlab.classify.models.lenet import lenet, lenet5
from cnnlab.classify.models.mlp import mlp, mlp_sigmoid
from cnnlab.classify.models.resnet import resnet18, resnet50, simple_resnet
from cnnlab.classify.models.simple import simple_cnn, simple_vgg
from cnnlab.classify.models.vgg import vgg11, vgg16
from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    input_size: int | None  # square input the model is designed for; None = the dataset's own
    description: str


_ENTRIES = [
    ModelEntry("mlp", mlp, 28, "MLP 784-50-50-10, ReLU, dropout 0.2"),
    ModelEntry("mlp_sigmoid", mlp_sigmoid, 28, "MLP 784-256-128-10, sigmoid"),
    ModelEntry("simple_cnn", simple_cnn, 28, "3 convs (20-50-20), 2 max-pools, FC 180-100"),
    ModelEntry("simple_vgg", simple_vgg, 28, "8 VGG 3x3 convs (64..512), 5 pools, FC 512-100-100"),
    ModelEntry("simple_resnet", simple_resnet, 28,
               "7x7/2 stem, 4 residual stages 64-512 (1 block each), GAP, FC"),
    ModelEntry("lenet5", lenet5, 32, "LeNet-5 (LeCun 1998): tanh, avg-pool, convs 6-16-120, FC 84"),
    ModelEntry("lenet", lenet, 28, "d2l LeNet: sigmoid, avg-pool, padding 2, FC 120-84"),
    ModelEntry("alexnet", alexnet, 224, "AlexNet (d2l, one tower), 96-256-384-384-256, FC 4096"),
    ModelEntry("vgg11", vgg11, 224, "VGG-11 (d2l blocks), width_ratio divides channels"),
    ModelEntry("vgg16", vgg16, 224, "VGG-16, 13 convs + 3 FC"),
    ModelEntry("googlenet", googlenet, 96, "GoogLeNet (d2l), 9 Inception modules"),
    ModelEntry("resnet18", resnet18, None, "ResNet-18, 3x3 stem (stem='imagenet' for d2l's)"),
    ModelEntry("resnet50", resnet50, 224, "ResNet-50, bottleneck blocks 3-4-6-3"),
]
MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}


def get_entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None


def create_model(name: str, in_channels: int = 1, num_classes: int = 10, **kwargs) -> nn.Module:
    """Build a registered model; unknown keyword arguments are a one-line error."""
    entry = get_entry(name)
    accepted = inspect.signature(entry.builder).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        options = ", ".join(p for p in accepted if p not in ("in_channels", "num_classes"))
        raise ConfigError(f"model {name} has no option {', '.join(unknown)} "
                          f"(options: {options or 'none'})")
    try:
        return entry.builder(in_channels=in_channels, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name}: {exc}") from None


def model_input_size(name: str, dataset_size: int, override: int | None = None) -> int:
    """The square input size a model gets: explicit override, else its design size, else data's."""
    if override:
        return override
    return get_entry(name).input_size or dataset_size
