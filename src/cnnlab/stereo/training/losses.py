"""PSMNet's training loss: smooth L1 on valid pixels, 0.5/0.7/1.0 over the three outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

OUTPUT_WEIGHTS = (0.5, 0.7, 1.0)


def valid_mask(target: torch.Tensor, max_disparity: int) -> torch.Tensor:
    """Pixels that supervise: 0 < gt < max_disparity and finite."""
    return torch.isfinite(target) & (target > 0) & (target < max_disparity)


def disparity_loss(predictions: list[torch.Tensor], target: torch.Tensor, mask: torch.Tensor
                   ) -> torch.Tensor:
    """Weighted mean smooth L1 over ``mask`` of one output (weight 1) or the stacked hourglass's
    three (0.5/0.7/1.0); 0 where no pixel supervises.

    Masked by multiplication, not by indexing: boolean indexing needs the count of selected
    pixels on the host, a device sync per batch. The target is zeroed outside the mask first
    so that a NaN or inf there cannot leak into the gradient.
    """
    weights = OUTPUT_WEIGHTS[-len(predictions):]
    target = torch.where(mask, target, torch.zeros_like(target))
    weight_map = mask.to(predictions[-1].dtype)
    pixels = weight_map.sum().clamp(min=1.0)
    return sum(w * (F.smooth_l1_loss(p, target, reduction="none") * weight_map).sum() / pixels
               for w, p in zip(weights, predictions))
