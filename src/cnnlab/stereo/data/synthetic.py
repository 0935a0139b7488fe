"""Synthetic stereo pairs with exact ground truth: the training set that needs no download.

A scene is a stack of textured layers (a slanted background plane and objects: ellipses,
rotated rectangles), each with a planar disparity d(x, y) = a + b (x - cx) + c (y - cy) and a
texture defined in left-image coordinates (smoothed noise, stripes, checkers, and scikit-image's
photographs where that package is installed). The left view shows, at each pixel, the layer of
largest disparity (nearest) that covers it. The right view is rendered from the same geometry:
a right pixel x_r sees point x_l of layer k where x_l - d_k(x_l, y) = x_r, solved in closed
form for planes, again keeping the nearest covering layer. So GT is exact; a left pixel is
occluded when something nearer covers its match in the right view or the match leaves the image.
Photometric noise and gain are applied per view after rendering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class StereoPairTensors:
    left: torch.Tensor  # (3, H, W) float in [0, 1]
    right: torch.Tensor
    disparity: torch.Tensor  # (H, W) float32, exact
    valid: torch.Tensor  # (H, W) bool: all pixels with GT
    noc: torch.Tensor  # (H, W) bool: non-occluded pixels


@dataclass
class _Layer:
    kind: str  # "plane" (covers everything), "ellipse", "rect"
    params: tuple
    plane: tuple[float, float, float, float, float]  # a, b, c, cx, cy
    texture: torch.Tensor  # (3, Ht, Wt) in [0, 1], covering x in [-margin, W + margin)
    margin: int

    def disparity(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b, c, cx, cy = self.plane
        return a + b * (x - cx) + c * (y - cy)

    def left_x_for_right(self, x_r: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Solve x_l - d(x_l, y) = x_r for the plane."""
        a, b, c, cx, cy = self.plane
        return (x_r + a - b * cx + c * (y - cy)) / (1.0 - b)

    def covers(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "plane":
            return torch.ones_like(x, dtype=torch.bool)
        if self.kind == "ellipse":
            ex, ey, rx, ry, angle = self.params
            u, v = _rotate(x - ex, y - ey, angle)
            return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
        ex, ey, half_w, half_h, angle = self.params
        u, v = _rotate(x - ex, y - ey, angle)
        return (u.abs() <= half_w) & (v.abs() <= half_h)

    def sample(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Bilinear texture lookup at left-image coordinates -> (3, *x.shape)."""
        _, th, tw = self.texture.shape
        gx = (x + self.margin + 0.5) / tw * 2 - 1
        gy = (y + 0.5) / th * 2 - 1
        grid = torch.stack([gx, gy], dim=-1).unsqueeze(0).float()
        out = F.grid_sample(self.texture.unsqueeze(0), grid, mode="bilinear",
                            padding_mode="border", align_corners=False)
        return out[0]


def _rotate(u: torch.Tensor, v: torch.Tensor, angle: float):
    cos, sin = math.cos(angle), math.sin(angle)
    return u * cos + v * sin, -u * sin + v * cos


def _smooth_noise(generator: torch.Generator, h: int, w: int, scale: float) -> torch.Tensor:
    """Band-limited noise: white noise at 1/scale resolution, bicubically upsampled."""
    small = torch.rand(3, max(2, int(h / scale)), max(2, int(w / scale)), generator=generator)
    up = F.interpolate(small.unsqueeze(0), (h, w), mode="bicubic", align_corners=False)[0]
    return up.clamp(0, 1)


_PHOTOS: list[torch.Tensor] | None = None


def _photos() -> list[torch.Tensor]:
    """scikit-image's sample photographs as (3, H, W) tensors, if that package is installed."""
    global _PHOTOS
    if _PHOTOS is None:
        _PHOTOS = []
        try:
            from skimage import data as skdata
        except ImportError:
            return _PHOTOS
        for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass",
                     "gravel"):
            try:
                image = torch.as_tensor(getattr(skdata, name)()).float() / 255.0
            except (OSError, ValueError, AttributeError):  # a missing sample file: skip it
                continue
            image = image.unsqueeze(0).expand(3, -1, -1) if image.dim() == 2 \
                else image.permute(2, 0, 1)[:3]
            _PHOTOS.append(image.contiguous())
    return _PHOTOS


def _texture(generator: torch.Generator, h: int, w: int, use_photos: bool) -> torch.Tensor:
    photos = _photos() if use_photos else []
    kinds = ["noise", "noise", "stripes", "checker"] + (["photo", "photo"] if photos else [])
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=generator))]
    base = _smooth_noise(generator, h, w, scale=float(torch.empty(1).uniform_(
        2.5, 8.0, generator=generator)))
    if kind == "photo":
        photo = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        scale = float(torch.empty(1).uniform_(0.5, 1.5, generator=generator))
        resized = F.interpolate(photo.unsqueeze(0), scale_factor=scale, mode="bilinear",
                                align_corners=False)[0]
        reps = (1, math.ceil(h / resized.shape[1]), math.ceil(w / resized.shape[2]))
        return (0.8 * resized.repeat(*reps)[:, :h, :w] + 0.2 * base).clamp(0, 1)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    if kind == "stripes":
        angle = float(torch.rand(1, generator=generator)) * math.pi
        period = float(torch.empty(1).uniform_(4, 16, generator=generator))
        wave = 0.5 + 0.5 * torch.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle))
                                     / period)
        return (0.5 * wave + 0.5 * base).clamp(0, 1)
    if kind == "checker":
        period = float(torch.empty(1).uniform_(6, 20, generator=generator))
        checker = ((torch.floor(xx / period) + torch.floor(yy / period)) % 2).float()
        blurred = F.avg_pool2d(checker[None, None], 3, 1, 1)[0, 0]  # soften edges
        return (0.45 * blurred + 0.55 * base).clamp(0, 1)
    return base


def _random_layers(generator: torch.Generator, h: int, w: int, max_disparity: float,
                   num_objects: int, use_photos: bool) -> list[_Layer]:
    def uniform(lo, hi):
        return float(torch.empty(1).uniform_(lo, hi, generator=generator))

    margin = math.ceil(max_disparity) + 8
    tw = w + 2 * margin
    lo = 0.05 * max_disparity
    background_d = uniform(lo, 0.35 * max_disparity)
    slope_x = uniform(-0.08, 0.08) * max_disparity / w
    slope_y = uniform(0.0, 0.5) * max_disparity / h  # ground-plane-like: nearer at the bottom
    # keep the plane's smallest value (at a corner) at or above ``lo``: no negative disparity
    corner_min = -abs(slope_x) * w / 2 - slope_y * h / 2
    background_d = max(background_d, lo - corner_min)
    layers = [_Layer("plane", (), (background_d, slope_x, slope_y, w / 2, h / 2),
                     _texture(generator, h, tw, use_photos), margin)]
    for _ in range(num_objects):
        d = uniform(0.3 * max_disparity, 0.85 * max_disparity)
        b = uniform(-0.1, 0.1) * d / w
        c = uniform(-0.1, 0.1) * d / h
        ex, ey = uniform(0, w), uniform(0, h)
        angle = uniform(0, math.pi)
        size_x, size_y = uniform(0.05, 0.25) * w, uniform(0.08, 0.35) * h
        if torch.rand(1, generator=generator) < 0.5:
            layer = _Layer("ellipse", (ex, ey, size_x, size_y, angle), (d, b, c, ex, ey),
                           _texture(generator, h, tw, use_photos), margin)
        else:
            layer = _Layer("rect", (ex, ey, size_x, size_y, angle), (d, b, c, ex, ey),
                           _texture(generator, h, tw, use_photos), margin)
        layers.append(layer)
    return layers


def _composite(layers: list[_Layer], x: torch.Tensor, y: torch.Tensor, right_view: bool):
    """Per pixel, the nearest covering layer: returns (image, disparity)."""
    best_d = torch.full_like(x, -float("inf"))
    image = torch.zeros(3, *x.shape)
    for layer in layers:
        x_left = layer.left_x_for_right(x, y) if right_view else x
        d = layer.disparity(x_left, y)
        nearer = layer.covers(x_left, y) & (d > best_d)
        best_d = torch.where(nearer, d, best_d)
        image = torch.where(nearer.unsqueeze(0), layer.sample(x_left, y), image)
    return image, best_d


def render_pair(height: int = 256, width: int = 512, max_disparity: float = 64.0,
                seed: int = 0, num_objects: int | None = None, noise: float = 0.01,
                use_photos: bool = True) -> StereoPairTensors:
    """One random scene, deterministic for ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    if num_objects is None:
        num_objects = int(torch.randint(3, 9, (1,), generator=generator).item())
    layers = _random_layers(generator, height, width, max_disparity, num_objects, use_photos)
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                          torch.arange(width, dtype=torch.float32), indexing="ij")
    left, disparity = _composite(layers, x, y, right_view=False)
    right, right_disparity = _composite(layers, x, y, right_view=True)
    # occlusion: the match x - d must be inside the image and not covered by something nearer
    match = x - disparity
    inside = match >= 0
    column = match.round().clamp(0, width - 1).long()
    seen = right_disparity.gather(1, column)
    noc = inside & (seen <= disparity + 0.5)
    if noise > 0:
        gains = 1.0 + 0.05 * (torch.rand(2, generator=generator) - 0.5)
        left = left * gains[0] + noise * torch.randn(left.shape, generator=generator)
        right = right * gains[1] + noise * torch.randn(right.shape, generator=generator)
    valid = (disparity > 0) & (disparity < max_disparity)
    return StereoPairTensors(left.clamp(0, 1), right.clamp(0, 1), disparity.float(), valid,
                             noc & valid)


def scene_max_disparity(max_disparity: int) -> float:
    """The largest disparity of synthetic scenes for a network of range ``max_disparity``:
    3/4 of it, so that every scene's ground truth lies well inside what the network outputs."""
    return 0.75 * max_disparity
