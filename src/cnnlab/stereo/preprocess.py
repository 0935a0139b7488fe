"""How an RGB pair becomes PSMNet input: [0, 1], then ImageNet mean/std (the published code's
normalisation, which every official release expects; the model card records it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_input(image: np.ndarray, device: torch.device, mean: Sequence[float] = IMAGENET_MEAN,
             std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) normalised float on ``device``."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).to(device).permute(2, 0, 1).float()
    x = x / 255
    mean_t = torch.tensor(tuple(mean), device=device).view(3, 1, 1)
    std_t = torch.tensor(tuple(std), device=device).view(3, 1, 1)
    return ((x - mean_t) / std_t).unsqueeze(0)
