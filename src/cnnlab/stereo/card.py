"""Model cards of stereo networks: architecture (with ``align_corners``, which belongs to the
weights), input normalisation and disparity range, written by training and import, read by
eval, predict and fine-tuning."""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnlab.engine.card import ModelCard, build_network
from cnnlab.errors import CheckpointError
from cnnlab.stereo.models import PSMNetConfig, create_model
from cnnlab.stereo.preprocess import IMAGENET_MEAN, IMAGENET_STD

PREPROCESS = {
    "channels": 3, "order": "RGB", "scale": "uint8 / 255",
    "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
    "padding": "bottom/right zeros to a multiple of 16, output cropped back",
}
# kwargs that change no parameter shape, so a user may override them at load time
RUNTIME_KWARGS = ("maxdisp", "align_corners")


def psmnet_card(config: PSMNetConfig, training: dict[str, Any] | None = None,
                **fields: Any) -> ModelCard:
    """The card of a PSMNet with ``config``; ``fields`` fill the other card fields."""
    return ModelCard(lab="stereo", architecture="psmnet", kwargs=config.to_dict(),
                     preprocess=dict(PREPROCESS), outputs=disparity_outputs(config.maxdisp),
                     training=training or {}, **fields)


def disparity_outputs(maxdisp: int) -> dict[str, Any]:
    return {"disparity": "left view, pixels", "range": [0, maxdisp - 1]}


def with_overrides(card: ModelCard, overrides: dict[str, Any], where: str) -> ModelCard:
    """``card`` with run-time kwargs (maxdisp, align_corners) changed, and a note saying so."""
    changed = {k: v for k, v in overrides.items() if v is not None and card.kwargs.get(k) != v}
    unknown = sorted(set(changed) - set(RUNTIME_KWARGS))
    if unknown:
        raise CheckpointError(f"{where}: {', '.join(unknown)} cannot change at load time (only "
                              f"{', '.join(RUNTIME_KWARGS)})")
    if not changed:
        return card
    kwargs = {**card.kwargs, **changed}
    notes = [*card.notes, "overridden at load time: " + ", ".join(
        f"{k}={v} (the weights' card says {card.kwargs.get(k)})" for k, v in changed.items())]
    return card.with_changes(kwargs=kwargs, outputs=disparity_outputs(kwargs["maxdisp"]),
                             notes=notes)


def build_stereo_model(card: ModelCard, where: str | None = None) -> nn.Module:
    """The untrained stereo network a card describes (``where``: the file, for errors)."""
    return build_network(card, "stereo", create_model, where)
