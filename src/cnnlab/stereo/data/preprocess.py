"""How an RGB pair becomes PSMNet input: [0, 1], then ImageNet mean/std (the published code's
normalisation, which every official release expects; the model card records it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# as model cards record it
IMAGENET_PREPROCESS = {
    "channels": 3, "order": "RGB", "scale": "uint8 / 255",
    "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
    "padding": "bottom/right zeros to a multiple of 16, output cropped back",
}


def to_input(image: np.ndarray, device: torch.device, mean: Sequence[float] = IMAGENET_MEAN,
             std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) normalised float on ``device`` (as training's
    ``Normalize`` does it, to the bit)."""
    return Normalize(mean, std)(Normalize.unit(np.asarray(image, dtype=np.uint8))
                                ).unsqueeze(0).to(device)


class Normalize:
    """uint8 (H, W, 3) or [0, 1] (3, H, W) images -> the network's normalised input."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD):
        self.mean = torch.tensor(tuple(mean)).view(3, 1, 1)
        self.std = torch.tensor(tuple(std)).view(3, 1, 1)

    @staticmethod
    def unit(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255

    def __call__(self, unit_image: torch.Tensor) -> torch.Tensor:
        return (unit_image - self.mean) / self.std
