"""The concatenation cost volume: the reference's construction and an equal one that export and
compilers accept."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def build_concat_volume(left: torch.Tensor, right: torch.Tensor, levels: int,
                        memory_format: torch.memory_format = torch.contiguous_format
                        ) -> torch.Tensor:
    """(B, C, H, W), (B, C, H, W) -> (B, 2C, D, H, W) with D = ``levels``.

    At disparity d and column x: [left[x], right[x - d]] where x >= d, zeros elsewhere, as
    the reference's loop builds it, to the last bit. Each disparity plane is made in the
    channels-last order (H, W, 2C) from a slice of the left-padded right features and stacked,
    so there is no slice assignment: torch.export and ONNX keep the width dynamic and frozen
    torch.compile accepts it. The result has channels_last_3d strides, which feed the 3-D
    convolutions without a copy; another ``memory_format`` costs one copy. The planes are
    held until stacked: twice the volume's memory for a moment.
    """
    width = left.shape[3]
    left_last = left.permute(0, 2, 3, 1)  # (B, H, W, C): a view for channels_last features
    padded = F.pad(right.permute(0, 2, 3, 1), (0, 0, levels - 1, 0))  # W padded on the left
    columns = torch.arange(width, device=left.device).view(1, 1, width, 1)
    planes = []
    for d in range(levels):
        kept = torch.where(columns >= d, left_last, 0.0)  # +0.0 where masked, as the loop
        start = levels - 1 - d
        planes.append(torch.cat([kept, padded[:, :, start:start + width]], dim=-1))
    volume = torch.stack(planes, dim=1).permute(0, 4, 1, 2, 3)  # (B, 2C, D, H, W)
    if memory_format == torch.channels_last_3d:
        return volume
    return volume.contiguous(memory_format=memory_format)


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
