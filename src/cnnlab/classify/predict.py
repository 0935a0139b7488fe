"""Predict classes of arbitrary PNG/JPEG files with a trained classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnlab.classify.card import preprocess_of
from cnnlab.classify.weights import load_model
from cnnlab.data.image import read_rgb
from cnnlab.engine.card import ModelCard
from cnnlab.engine.device import select_device


def load_image_for(path: Path, channels: int, size: int, light_background_invert: bool
                   ) -> torch.Tensor:
    """(1, C, size, size) uint8: converted to the model's channels and the dataset's size.

    Digits and clothes in MNIST-style sets are light on black; a photo or scan with a light
    background is inverted so that it looks like the training data.
    """
    image = Image.fromarray(read_rgb(path))  # 16-bit scaled, not clipped
    if channels == 1:
        image = image.convert("L")
    array = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    if channels == 1:
        array = array[None]
        if light_background_invert:
            border = np.concatenate([array[0, 0], array[0, -1], array[0, :, 0], array[0, :, -1]])
            if border.mean() > 127:
                array = 255 - array
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(np.array(array, copy=True)).unsqueeze(0)


@torch.no_grad()
def predict_images(model: nn.Module, card: ModelCard, paths: list[Path], top_k: int = 3
                   ) -> list[dict]:
    """Top-k classes with probabilities for each image file, preprocessed as the card says."""
    classes = card.outputs["classes"]
    preprocess = preprocess_of(card)
    channels, size = int(card.preprocess["channels"]), int(card.preprocess["data_size"])
    invert = card.preprocess.get("background") == "dark"
    device = next(model.parameters()).device
    batch = torch.cat([load_image_for(Path(p), channels, size, invert) for p in paths]).to(device)
    probabilities = torch.softmax(model(preprocess(batch)).float(), dim=1)
    k = min(top_k, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    return [{"file": str(path),
             "top": [{"class": classes[i], "index": int(i), "probability": float(v)}
                     for v, i in zip(vals.tolist(), idx.tolist())]}
            for path, vals, idx in zip(paths, values, indices)]


def predict_files(checkpoint: str | Path, paths: list[Path], top_k: int = 3,
                  device: str = "auto") -> tuple[list[dict], ModelCard]:
    """Load a checkpoint or registered weights and predict ``paths``; returns (results, card)."""
    model, card = load_model(checkpoint, select_device(device))
    return predict_images(model, card, paths, top_k), card
