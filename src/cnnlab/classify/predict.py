"""Predict the classes of images (files, PIL images, arrays) with a trained classifier."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlab.classify.card import preprocess_of
from cnnlab.classify.choices import TOP_K
from cnnlab.classify.inputs import image_batch
from cnnlab.classify.weights import load_model
from cnnlab.engine.card import ModelCard
from cnnlab.engine.device import select_device
from cnnlab.engine.rules import checked
from cnnlab.errors import ConfigError


@dataclass
class Predictions:
    """Each image's top classes with their probabilities; shows the images with their labels
    in a notebook."""

    rows: list[dict]  # {"file", "top": [{"class", "index", "probability"}]}
    images: torch.Tensor  # (N, C, H, W) uint8, as the model saw them (before normalising)

    @property
    def labels(self) -> list[str]:
        """The most probable class of each image."""
        return [row["top"][0]["class"] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]

    def __repr__(self) -> str:
        lines = [f"{row['file']}: " + ", ".join(f"{t['class']} {100 * t['probability']:.1f}%"
                                                for t in row["top"]) for row in self.rows[:20]]
        more = [f"... and {len(self.rows) - 20} more"] if len(self.rows) > 20 else []
        return "\n".join([f"Predictions of {len(self.rows)} image(s):", *lines, *more])

    def show(self, n: int = 24):
        """The first ``n`` images with their most probable class (a Picture)."""
        from cnnlab.classify.gallery import gallery

        captions = [f"{t['class']} {100 * t['probability']:.0f}%"
                    for t in (row["top"][0] for row in self.rows[:n])]
        return gallery(self.images[:n], captions, "predictions")

    def _repr_png_(self) -> bytes:
        return self.show().png()


@torch.no_grad()
@checked(top_k=TOP_K)
def predict_images(model: nn.Module, card: ModelCard, images: object, top_k: int = 3
                   ) -> Predictions:
    """Top-k classes with probabilities for each image (files, PIL images, uint8 arrays or
    tensors), preprocessed as the card says."""
    classes = card.outputs["classes"]
    channels, size = int(card.preprocess["channels"]), int(card.preprocess["data_size"])
    batch, names = image_batch(images, channels, size, card.preprocess.get("background") == "dark")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = model(preprocess_of(card)(batch.to(device)))
    finally:
        model.train(was_training)
    finite = torch.isfinite(logits).all(dim=1)
    if not bool(finite.all()):  # NaN weights or an overflow: no class may be shown for it
        first = names[int((~finite).nonzero()[0])]
        raise ConfigError(f": its output for {int((~finite).sum())} of {len(names)} image(s) "
                          f"({first} first) is not finite (NaN or infinity); its weights are "
                          "damaged or its training diverged", parameter="model")
    probabilities = torch.softmax(logits.float(), dim=1)
    k = min(top_k, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    rows = [{"file": name,
             "top": [{"class": classes[i], "index": int(i), "probability": float(v)}
                     for v, i in zip(vals.tolist(), idx.tolist())]}
            for name, vals, idx in zip(names, values, indices)]
    return Predictions(rows, batch)


def predict_files(checkpoint: str | Path, paths: list[Path], top_k: int = 3,
                  device: str = "auto") -> tuple[list[dict], ModelCard]:
    """Load a checkpoint or registered weights and predict ``paths``; returns (rows, card)."""
    model, card = load_model(checkpoint, select_device(device))
    return predict_images(model, card, [Path(p) for p in paths], top_k).rows, card
