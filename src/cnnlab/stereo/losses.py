"""PSMNet's training loss: smooth L1 on valid pixels, 0.5/0.7/1.0 over the three outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

OUTPUT_WEIGHTS = (0.5, 0.7, 1.0)


def valid_mask(target: torch.Tensor, maxdisp: int) -> torch.Tensor:
    """Pixels that supervise: 0 < gt < maxdisp and finite."""
    return torch.isfinite(target) & (target > 0) & (target < maxdisp)


def disparity_loss(predictions: torch.Tensor | list[torch.Tensor], target: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Weighted smooth L1 over one output (weight 1) or the stacked hourglass's three."""
    if isinstance(predictions, torch.Tensor):
        predictions = [predictions]
    weights = OUTPUT_WEIGHTS[-len(predictions):]
    if not mask.any():
        return predictions[0].new_zeros(()).requires_grad_()  # nothing supervises this batch
    return sum(w * F.smooth_l1_loss(p[mask], target[mask]) for w, p in zip(weights, predictions))
