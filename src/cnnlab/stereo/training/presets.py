"""Named sets of stereo training defaults (``stereo train --preset``); flags given override
them. Plain values, no torch: the command line reads them for --help."""

from __future__ import annotations

from typing import Any

from cnnlab.errors import ConfigError

PRESETS = {
    # the published network is GPU-scale (0.09 pairs/s on a 2-core CPU): this small PSMNet
    # trains on synthetic scenes in about 25 minutes there (README, "Measured")
    "cpu-small": {"max_disparity": 48, "blocks": (1, 2, 1, 1), "crop": (64, 128),
                  "synthetic_size": (128, 256), "samples_per_epoch": 320, "batch_size": 4,
                  "epochs": 15, "lr": 1e-3, "schedule": "cosine", "align_corners": False},
}


def check_preset(preset: str | None, init: str | None) -> dict[str, Any]:
    """The defaults ``preset`` sets (none for None), refused beside ``init``: a preset sets
    an architecture, and fine-tuning takes the weights' own."""
    if preset is None:
        return {}
    if preset not in PRESETS:
        raise ConfigError(f"{preset!r}: choose from {', '.join(PRESETS)}", parameter="preset")
    if init:
        raise ConfigError("and `init`: the preset sets an architecture, the `init` weights' "
                          "card decides it; give the options you want instead",
                          parameter="preset")
    return PRESETS[preset]


def preset_defaults(preset: str, dataset: str) -> dict[str, Any]:
    """The defaults ``preset`` sets for a run on ``dataset``: its scene size only where scenes
    are drawn (elsewhere the run would not use it, and refuses settings it would not use)."""
    values = dict(PRESETS[preset])
    if dataset != "synthetic":
        values.pop("synthetic_size", None)
    return values
