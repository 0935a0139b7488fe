"""Name -> builder, default input size and a one-line description; each entry is registered by
``@register_model`` next to its builder (the family modules that ``models/__init__`` imports)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    input_size: int | None  # square input the model is designed for; None = the dataset's own
    description: str


MODELS: dict[str, ModelEntry] = {}


Builder = Callable[..., nn.Module]


def register_model(input_size: int | None, description: str
                   ) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under its function name."""
    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if builder.__name__ in MODELS:
            raise ValueError(f"model {builder.__name__!r} is registered twice")
        MODELS[builder.__name__] = ModelEntry(builder.__name__, builder, input_size, description)
        return builder
    return register


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
