"""A grid of small images with a caption each: predictions, and the mistakes of an
evaluation."""

from __future__ import annotations

import math

import torch

from cnnlab.engine.plotting import Picture, new_figure


def gallery(images: torch.Tensor, captions: list[str], title: str, columns: int = 8,
            colors: list[str] | None = None) -> Picture:
    """(N, C, H, W) uint8 images in a grid, each captioned (in ``colors`` if given)."""
    n = max(len(images), 1)
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    fig = new_figure(figsize=(1.5 * columns, 1.7 * rows + 0.4))
    axes = fig.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(images):
            continue
        image = images[index].cpu()
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image.permute(1, 2, 0).numpy())
        ax.set_title(captions[index], fontsize=8,
                     color=colors[index] if colors else "black")
    fig.suptitle(title)
    fig.tight_layout()
    return Picture(fig, title)
