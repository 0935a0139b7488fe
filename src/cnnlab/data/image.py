"""Image files as arrays, for every lab: 8/16-bit grey, RGB, RGBA, LA and palette images become
(H, W, 3) uint8 RGB, scaled (never clipped), behind a documented pixel limit.

A 16-bit image is scaled by its range (65535 when any value exceeds 255), not clipped as PIL's
``convert("L")`` does, which turns a 16-bit photograph into a near-binary one.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnlab.errors import DataError, shown_path

MAX_PIXELS_ENV = "CNNLAB_MAX_PIXELS"
# 120 megapixels: a 12000x10000 photograph (~360 MB as RGB uint8). Larger images are refused
# before they are decoded (a decompression bomb costs gigabytes); set $CNNLAB_MAX_PIXELS to
# raise the limit, or to 0 to remove it.
DEFAULT_MAX_PIXELS = 120_000_000
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")


def max_pixels() -> int | None:
    """The pixel limit in force (None: no limit)."""
    text = os.environ.get(MAX_PIXELS_ENV)
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise DataError(f"${MAX_PIXELS_ENV}={text!r}: expected a whole number of pixels "
                        "(0 for no limit)")
    return value if value > 0 else None


def open_image(path: str | Path) -> Image.Image:
    """The decoded image at ``path``; one-line errors for a missing, unreadable or too large
    file."""
    path = Path(path)
    limit = max_pixels()
    # PIL's own bomb check (in open and load) is replaced by ours, which the user can change
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
            width, height = image.size
            if limit is not None and width * height > limit:
                image.close()
                raise DataError(f"{path}: {width}x{height} is {width * height:,} pixels, over "
                                f"the limit of {limit:,}; set ${MAX_PIXELS_ENV} to a larger "
                                "number (0: no limit) to read it")
            image.load()
        return image
    except FileNotFoundError:
        raise DataError(f"{shown_path(path)}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not an image file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grey image as 8-bit grey, scaled by its range (65535 when any value exceeds
    255), never clipped; any other image as it is."""
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    array = np.asarray(image, dtype=np.float64)
    peak = 65535.0 if array.max() > 255 else 255.0
    return Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an 8/16-bit grey, RGB, RGBA, LA or palette image."""
    path = Path(path)
    image = eight_bit(open_image(path))
    if image.mode == "F":
        raise DataError(f"{path}: floating-point image, expected an 8/16-bit photograph")
    return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy
