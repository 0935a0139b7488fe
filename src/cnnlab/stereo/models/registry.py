"""Name -> stereo network builder; each entry is registered next to its builder.

Variants are arguments (``create_model("psmnet", variant="basic")``), not separate entries, and
each entry carries the input normalisation its weights expect (timm's ``default_cfg``), which
new model cards copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class StereoModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    preprocess: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, StereoModelEntry] = {}


Builder = Callable[..., nn.Module]


def register_model(name: str, description: str, preprocess: dict[str, Any]
                   ) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under ``name``."""
    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"stereo model {name!r} is registered twice")
        MODELS[name] = StereoModelEntry(name, builder, description, dict(preprocess))
        return builder
    return register


def get_entry(name: str) -> StereoModelEntry:
    if name not in MODELS:
        raise ConfigError(f"unknown stereo model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered stereo network; a bad name or option is a one-line error."""
    entry = get_entry(name)
    try:
        return entry.builder(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} configuration: {exc}") from None
