"""Model cards of stereo networks: architecture (with ``align_corners``, which belongs to the
weights), input normalisation and disparity range, written by training and import, read by
eval, predict and fine-tuning."""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnlab.engine.card import ModelCard, build_network
from cnnlab.errors import CheckpointError
from cnnlab.stereo.models import PSMNetConfig, create_model, get_entry

# kwargs that change no parameter shape, so a user may override them at load time
RUNTIME_KWARGS = ("max_disparity", "align_corners")
# card kwargs renamed since they were first written
LEGACY_KWARGS = {"maxdisp": "max_disparity"}


def psmnet_card(config: PSMNetConfig, training: dict[str, Any] | None = None,
                **fields: Any) -> ModelCard:
    """The card of a PSMNet with ``config``; ``fields`` fill the other card fields."""
    return ModelCard(lab="stereo", architecture="psmnet", kwargs=config.to_dict(),
                     preprocess=dict(get_entry("psmnet").preprocess),
                     outputs=disparity_outputs(config.max_disparity),
                     training=training or {}, **fields)


def disparity_outputs(max_disparity: int) -> dict[str, Any]:
    return {"disparity": "left view, pixels", "range": [0, max_disparity - 1]}


def validated(card: ModelCard, where: str) -> ModelCard:
    """``card`` with complete PSMNet arguments and input normalisation, or a one-line error
    naming ``where``: a hand-edited or foreign card must not fail later with a traceback."""
    if any(old in card.kwargs for old in LEGACY_KWARGS):
        card = card.with_changes(kwargs={LEGACY_KWARGS.get(k, k): v
                                         for k, v in card.kwargs.items()})
    if card.architecture == "psmnet":
        missing = [k for k in ("variant", "max_disparity", "blocks", "align_corners")
                   if card.kwargs.get(k) is None]
        if missing:
            raise CheckpointError(f"{where}: the model card lacks {', '.join(missing)}")
        try:
            kwargs = PSMNetConfig(**card.kwargs).to_dict()
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: the model card's PSMNet arguments: {exc}") from None
        card = card.with_changes(kwargs=kwargs)
    for key in ("mean", "std"):
        values = card.preprocess.get(key)
        if not (isinstance(values, list) and len(values) == 3
                and all(isinstance(v, (int, float)) and v == v for v in values)):
            raise CheckpointError(f"{where}: the model card's preprocess {key} is not three "
                                  "numbers")
    if not all(card.preprocess["std"]):
        raise CheckpointError(f"{where}: the model card's preprocess std has a zero")
    return card


def with_overrides(card: ModelCard, overrides: dict[str, Any], where: str) -> ModelCard:
    """``card`` with run-time kwargs (max_disparity, align_corners) changed, and a note saying
    so."""
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
    return card.with_changes(kwargs=kwargs, outputs=disparity_outputs(kwargs["max_disparity"]),
                             notes=notes)


def build_stereo_model(card: ModelCard, where: str | None = None) -> nn.Module:
    """The untrained stereo network a card describes (``where``: the file, for errors)."""
    return build_network(card, "stereo", create_model, where)
