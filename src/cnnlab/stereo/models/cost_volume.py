"""The concatenation cost volume, built without a Python loop over disparities."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def build_concat_volume(left: torch.Tensor, right: torch.Tensor, levels: int,
                        memory_format: torch.memory_format = torch.contiguous_format
                        ) -> torch.Tensor:
    """(B, C, H, W), (B, C, H, W) -> (B, 2C, D, H, W) with D = ``levels``.

    At disparity d and column x: [left[x], right[x - d]] where x >= d, zeros elsewhere, as
    the reference's loop builds it. The right features are padded on the left by D-1 columns
    and read through one sliding-window view, so the volume is written in one pass, directly
    in ``memory_format`` (channels_last_3d feeds the 3-D convolutions without a copy).
    """
    b, c, h, w = left.shape
    # windows[..., k, x] = padded[x + k] = right[x + k - (D - 1)]; disparity d = D - 1 - k
    padded = F.pad(right, (levels - 1, 0))
    shifted = padded.unfold(3, w, 1).flip(3)  # (B, C, H, D, W)
    columns = torch.arange(w, device=left.device)
    valid = (columns.view(1, w) >= torch.arange(levels, device=left.device).view(levels, 1))
    volume = torch.empty(b, 2 * c, levels, h, w, dtype=left.dtype, device=left.device,
                         memory_format=memory_format)
    volume[:, :c] = left.unsqueeze(2) * valid.view(1, 1, levels, 1, w).to(left.dtype)
    volume[:, c:] = shifted.permute(0, 1, 3, 2, 4)
    return volume


def build_concat_volume_loop(left: torch.Tensor, right: torch.Tensor, levels: int
                             ) -> torch.Tensor:
    """The reference's construction (one slice assignment per disparity), for tests and bench."""
    b, c, h, w = left.shape
    volume = left.new_zeros(b, 2 * c, levels, h, w)
    for d in range(levels):
        if d > 0:
            volume[:, :c, d, :, d:] = left[:, :, :, d:]
            volume[:, c:, d, :, d:] = right[:, :, :, :-d]
        else:
            volume[:, :c, d] = left
            volume[:, c:, d] = right
    return volume
