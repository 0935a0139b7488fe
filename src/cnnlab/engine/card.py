"""Model cards: what a set of weights is, how to feed it, what it learned from, how well it does.

Every checkpoint cnnlab writes (trained, imported or shipped) carries its card in the
safetensors header, so eval and predict rebuild the model and its preprocessing from the file
alone, never from a dataset spec or a training config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from torch import nn

from cnnlab.errors import CheckpointError, CnnlabError

CARD_VERSION = 1
LABS = {"classify": "classifier", "stereo": "stereo model"}  # lab -> what its models are


@dataclass(frozen=True)
class ModelCard:
    """The facts about one set of weights, as plain JSON values.

    ``metrics`` and ``published`` are lists of ``{"data": what was measured on, "values":
    {metric: number}, "note"/"source": text}``: figures measured with cnnlab, and figures the
    authors published (with where).
    """

    lab: str  # "classify" or "stereo"
    architecture: str  # name in the lab's model registry
    kwargs: dict[str, Any]  # the builder's arguments
    preprocess: dict[str, Any]  # channels, sizes, value range, mean/std, ...
    outputs: dict[str, Any]  # class names, or the disparity range and unit
    training: dict[str, Any] = field(default_factory=dict)  # data, recipe, command
    metrics: list[dict[str, Any]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    name: str | None = None  # the registered weights name, if any
    source: dict[str, Any] = field(default_factory=dict)  # file, origin, checksum
    notes: list[str] = field(default_factory=list)
    # where the class of a network defined outside the registry lives ("module.QualName", e.g.
    # a student's "__main__.LeNet"): such weights are rebuilt only from the class the caller
    # passes, never by importing this name
    module: str | None = None
    version: int = CARD_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ModelCard:
        """Validate a stored card; ``where`` (the file) names the culprit in the error."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: model card is not a JSON object")
        missing = [k for k in ("lab", "architecture", "kwargs", "preprocess", "outputs")
                   if k not in data]
        if missing:
            raise CheckpointError(f"{where}: model card lacks {', '.join(missing)}")
        if data["lab"] not in LABS:
            raise CheckpointError(f"{where}: model card names an unknown lab {data['lab']!r}")
        if data.get("version", CARD_VERSION) > CARD_VERSION:
            raise CheckpointError(f"{where}: model card version {data['version']} is newer "
                                  f"than this cnnlab reads ({CARD_VERSION}); upgrade cnnlab")
        for key in ("kwargs", "preprocess", "outputs", "training", "source"):
            if not isinstance(data.get(key, {}), dict):
                raise CheckpointError(f"{where}: model card field {key!r} is not an object")
        if not isinstance(data.get("module") or "", str):
            raise CheckpointError(f"{where}: model card field 'module' is not a text")
        for key in ("metrics", "published", "notes"):
            if not isinstance(data.get(key, []), list):
                raise CheckpointError(f"{where}: model card field {key!r} is not a list")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_changes(self, **changes) -> ModelCard:
        return replace(self, **changes)

    def summary(self) -> list[str]:
        """Human-readable lines: model, input, training data, published and measured figures."""
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items())
        lines = [f"model: {self.architecture}({args})" if self.module is None
                 else f"model: {self.architecture}, a network defined in {self.module}"]
        pre = self.preprocess
        if pre:
            lines.append("input: " + ", ".join(f"{k} {_short(v)}" for k, v in pre.items()))
        if self.training.get("data"):
            lines.append(f"trained on: {self.training['data']}")
        if self.training.get("command"):
            lines.append(f"recipe: {self.training['command']}")
        for label, rows in (("published", self.published), ("measured", self.metrics)):
            for row in rows:
                values = ", ".join(f"{k} {_short(v)}" for k, v in row.get("values", {}).items())
                extra = row.get("source") or row.get("note")
                lines.append(f"{label}: {row.get('data', '?')}: {values}"
                             + (f" ({extra})" if extra else ""))
        lines += [f"note: {note}" for note in self.notes]
        return lines


def build_network(card: ModelCard, lab: str, create_model: Callable[..., nn.Module],
                  where: str | None = None) -> nn.Module:
    """The untrained network ``card`` describes, built by the lab's ``create_model``. Loading
    passes ``where`` (the file), which the error then names; training passes None and gets
    the option's own error."""
    if card.lab != lab:
        raise CheckpointError(f"{where}: holds a {LABS[card.lab]}, not a {LABS[lab]}")
    if card.module is not None:
        raise CheckpointError(f"{where}: holds the weights of {card.architecture}, a network "
                              f"defined in Python ({card.module}); pass its class as model=")
    try:
        return create_model(card.architecture, **card.kwargs)
    except CnnlabError as exc:
        if where is None:
            raise
        raise CheckpointError(f"{where}: the model card does not describe a buildable "
                              f"network ({exc})") from None


def card_of_checkpoint(metadata: dict, lab: str, where: str,
                       legacy: Callable[[dict], ModelCard]) -> ModelCard:
    """A checkpoint's card; a run written before cards existed gets ``legacy(config)``, the
    lab's card derived from its saved configuration."""
    if "card" in metadata:
        card = ModelCard.from_dict(metadata["card"], where)
        if card.lab != lab:
            raise CheckpointError(f"{where}: holds a {LABS[card.lab]}, not a {LABS[lab]}")
        return card
    config = metadata.get("config", {})
    if config.get("lab") != lab or lab not in config:
        other = LABS.get(config.get("lab"))
        raise CheckpointError(f"{where}: " + (f"holds a {other}, not a {LABS[lab]}" if other
                                               else "no model card in this checkpoint"))
    try:
        return legacy(config)
    except (KeyError, TypeError, ValueError, CnnlabError) as exc:
        raise CheckpointError(f"{where}: cannot derive a model card from its config "
                              f"({exc!r})") from None


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        if len(value) > 6:
            return f"[{len(value)} items]"
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return str(value)
