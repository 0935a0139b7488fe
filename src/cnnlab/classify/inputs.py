"""What a classifier accepts as images: files, PIL images, uint8 arrays or tensors, one or
many, brought to the model's channels and the training data's size.

Digits and clothes in MNIST-style sets are light on black: a grey picture with a light
background is inverted to look like them, and a transparent canvas (a browser drawing: black
ink on transparency) is first laid on white, so that it is not read as all black.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnlab.data.image import eight_bit, open_image
from cnnlab.errors import ConfigError

ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor


def _on_white(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited over white (16-bit grey scaled, not clipped)."""
    image = eight_bit(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, image.convert("RGBA")).convert("RGB")
    if image.mode == "F":
        raise ConfigError("a floating-point image; give 8-bit images")
    return image.convert("RGB")


def _from_array(array: np.ndarray, parameter: str) -> Image.Image:
    if array.dtype != np.uint8:
        raise ConfigError(f": {array.dtype} array; give uint8 images (0-255), e.g. "
                          "(array * 255).round().astype('uint8') for values in [0, 1]",
                          parameter=parameter)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # (C, H, W), as a tensor from a dataset
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ConfigError(f": an array of shape {array.shape}; give (H, W) grey, (H, W, 3) "
                          "RGB or (H, W, 4) RGBA images", parameter=parameter)
    return Image.fromarray(np.ascontiguousarray(array))


def _items(images: object, parameter: str) -> list[tuple[str, object]]:
    """(name, one image) pairs from one image or many."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        many = images.ndim == 4 or (images.ndim == 3 and images.shape[-1] not in (1, 3, 4)
                                    and images.shape[0] not in (1, 3, 4))
        if not many:
            return [("image", images)]
        return [(f"image {i}", item) for i, item in enumerate(images)]
    if isinstance(images, (str, Path, Image.Image)):
        images = [images]
    if not isinstance(images, Sequence) or not images:
        got = "nothing" if isinstance(images, Sequence) else type(images).__name__
        raise ConfigError(f": expected image files, PIL images or uint8 arrays, got {got}",
                          parameter=parameter)
    return [(str(item) if isinstance(item, (str, Path)) else f"image {i}", item)
            for i, item in enumerate(images)]


def image_batch(images: object, channels: int, size: int, invert_light: bool,
                parameter: str = "images") -> tuple[torch.Tensor, list[str]]:
    """(N, channels, size, size) uint8 and a name per image (the file, or "image i")."""
    arrays, names = [], []
    for name, item in _items(images, parameter):
        if isinstance(item, (str, Path)):
            picture = open_image(item)
        elif isinstance(item, Image.Image):
            picture = item
        elif isinstance(item, (np.ndarray, torch.Tensor)):
            array = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item
            picture = _from_array(array, parameter)
        else:
            raise ConfigError(f": {name} is a {type(item).__name__}; give image files, PIL "
                              "images or uint8 arrays", parameter=parameter)
        try:
            picture = _on_white(picture)
        except ConfigError as exc:
            raise ConfigError(f": {name}: {exc}", parameter=parameter) from None
        if channels == 1:
            picture = picture.convert("L")
        array = np.asarray(picture.resize((size, size), Image.BILINEAR), dtype=np.uint8)
        if channels == 1:
            array = array[None]
            if invert_light:
                border = np.concatenate([array[0, 0], array[0, -1], array[0, :, 0],
                                         array[0, :, -1]])
                if border.mean() > 127:
                    array = 255 - array
        else:
            array = array.transpose(2, 0, 1)
        arrays.append(np.array(array, copy=True))
        names.append(name)
    return torch.from_numpy(np.stack(arrays)), names
