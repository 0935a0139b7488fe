"""Name -> stereo network builder, as the classification zoo does it.

Variants are arguments (``create_model("psmnet", variant="basic")``), not separate entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.stereo.models.psmnet import PSMNet, PSMNetConfig


@dataclass(frozen=True)
class StereoModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str


def _psmnet(**kwargs) -> PSMNet:
    return PSMNet(PSMNetConfig(**kwargs))


MODELS: dict[str, StereoModelEntry] = {
    "psmnet": StereoModelEntry("psmnet", _psmnet, "PSMNet (Chang & Chen, CVPR 2018): "
                               "stackhourglass or basic, any maxdisp that is a multiple of 16"),
}


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered stereo network; a bad name or option is a one-line error."""
    if name not in MODELS:
        raise ConfigError(f"unknown stereo model {name!r}; choose from {', '.join(MODELS)}")
    try:
        return MODELS[name].builder(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} configuration: {exc}") from None
