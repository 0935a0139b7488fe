"""Predict classes of arbitrary PNG/JPEG files with a trained classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from cnnlab.classify.evaluate import LoadedClassifier, load_classifier
from cnnlab.engine.device import select_device
from cnnlab.errors import DataError


def load_image_for(path: Path, channels: int, size: int, light_background_invert: bool
                   ) -> torch.Tensor:
    """(1, C, size, size) uint8: converted to the model's channels and the dataset's size.

    Digits and clothes in MNIST-style sets are light on black; a photo or scan with a light
    background is inverted so that it looks like the training data.
    """
    try:
        with Image.open(path) as image:
            image.load()
            image = image.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    array = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    if channels == 1:
        array = array[None]
        if light_background_invert:
            border = np.concatenate([array[0, 0], array[0, -1], array[0, :, 0], array[0, :, -1]])
            if border.mean() > 127:
                array = 255 - array
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array)).unsqueeze(0)


@torch.no_grad()
def predict_images(loaded: LoadedClassifier, paths: list[Path], top_k: int = 3) -> list[dict]:
    """Top-k classes with probabilities for each image file."""
    device = next(loaded.model.parameters()).device
    invert = loaded.spec.channels == 1
    batch = torch.cat([load_image_for(Path(p), loaded.spec.channels, loaded.spec.size, invert)
                       for p in paths]).to(device)
    probabilities = torch.softmax(loaded.model(loaded.preprocess(batch)).float(), dim=1)
    k = min(top_k, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    return [{"file": str(path),
             "top": [{"class": loaded.spec.classes[i], "index": int(i), "probability": float(v)}
                     for v, i in zip(vals.tolist(), idx.tolist())]}
            for path, vals, idx in zip(paths, values, indices)]


def predict_files(checkpoint: str | Path, paths: list[Path], top_k: int = 3,
                  device: str = "auto") -> list[dict]:
    loaded = load_classifier(checkpoint, select_device(device))
    return predict_images(loaded, paths, top_k)
