"""What ``StereoModel.predict`` accepts as a view, turned into the (H, W, 3) uint8 RGB array every
stereo method runs on: a file path, a PIL image, a uint8 (H, W, 3) or grey (H, W) array, or an
array of any other number type whose ``value_range`` is declared.

A float image in [0, 1] read as 0-255 would be almost black, and PSMNet still answers, badly
(official KITTI 2015 weights on a KITTI crop: EPE 21 px instead of 0.3): so a float array without
its range is refused, and values outside the declared range too. Errors name the parameter
(``left``, ``right``, ``value_range``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError, DataError, shown_path
from cnnlab.stereo.data.io import read_image

ACCEPTED = "a file path, a PIL image or a (H, W, 3) uint8 array"


def a_kind(value: object) -> str:
    """ "a list", "an int": the type of ``value`` for an error message."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


@dataclass
class View:
    """One view as the methods take it, and the file it came from."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    path: Path | None = None  # the file it was read from


def check_value_range(value_range: object) -> tuple[float, float] | None:
    """``value_range`` as (low, high) floats with low < high, or None."""
    if value_range is None:
        return None
    try:
        low, high = (float(v) for v in value_range)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"{value_range!r}: expected (low, high), e.g. (0, 1) or (0, 255)",
                          parameter="value_range") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"{value_range!r}: expected finite low < high, e.g. (0, 1)",
                          parameter="value_range")
    return low, high


def _from_path(value: str | os.PathLike, name: str) -> View:
    path = Path(value).expanduser()
    if not path.exists():
        raise DataError(f"{shown_path(path)}: no such file", parameter=name)
    if path.is_dir():
        raise DataError(f"{path}: a folder; give an image file (many pairs: "
                        "cnnlab.stereo.predict_folder)", parameter=name)
    try:
        return View(read_image(path), path)
    except DataError as exc:
        raise DataError(f"{exc}", parameter=name) from None


def _scaled(array: np.ndarray, name: str, value_range: tuple[float, float]) -> np.ndarray:
    """``array``'s values, in ``value_range``, mapped onto 0-255 and rounded to uint8."""
    low, high = value_range
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(": has NaN or infinite values", parameter=name)
    least, most = float(values.min()), float(values.max())
    if least < low or most > high:
        raise DataError(f": values from {least:g} to {most:g}, outside value_range=({low:g}, "
                        f"{high:g})", parameter=name)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _from_array(array: np.ndarray, name: str, value_range: tuple[float, float] | None) -> View:
    shape = "x".join(str(n) for n in array.shape)
    if array.ndim == 3 and array.shape[2] == 4:
        raise ConfigError(f": a 4-channel ({shape}) array; give RGB (H, W, 3), e.g. "
                          f"{name}[..., :3] to drop the alpha channel", parameter=name)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3))):
        raise ConfigError(f": an array of shape ({', '.join(map(str, array.shape))}); expected "
                          "(H, W, 3) RGB or (H, W) grey", parameter=name)
    if min(array.shape[:2]) < 1:
        raise ConfigError(f": an empty ({shape}) image", parameter=name)
    if array.dtype == np.bool_ or array.dtype.kind not in "uif":
        raise ConfigError(f": a {array.dtype} array; expected uint8 (or numbers with "
                          "value_range)", parameter=name)
    if value_range is not None:
        image = _scaled(array, name, value_range)
    elif array.dtype == np.uint8:
        image = array
    else:
        kind = "float" if array.dtype.kind == "f" else "integer"
        raise ConfigError(f": a {array.dtype} array, and a {kind} image's range is not known; "
                          "pass value_range=(0, 1) or (0, 255), the range its values are in, or "
                          "convert it to uint8", parameter=name)
    if image.ndim == 2 or image.shape[2] == 1:  # noted as grey with the pair (pair_notes)
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
    return View(np.require(image, np.uint8, ["C", "W"]))  # torch takes writable arrays only


def as_view(value: object, name: str, value_range: tuple[float, float] | None = None) -> View:
    """``value`` (see the module) as a View; a one-line error naming ``name`` otherwise."""
    if value is None:
        raise ConfigError(f"is required: {ACCEPTED}", parameter=name)
    if isinstance(value, (str, os.PathLike)):
        return _from_path(value, name)
    if type(value).__module__.startswith("torch"):
        raise ConfigError(f": {a_kind(value)}; give {ACCEPTED} (a tensor: "
                          f"{name}.permute(1, 2, 0).cpu().numpy() with value_range=)",
                          parameter=name)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None
    if Image is not None and isinstance(value, Image.Image):
        if value.mode in ("F", "I", "I;16", "I;16B", "I;16L") and value_range is None:
            raise ConfigError(f": a PIL image of mode {value.mode}, whose range is not known; "
                              "pass value_range=, or convert it to RGB", parameter=name)
        if value.mode in ("L", "RGB", "F", "I", "I;16", "I;16B", "I;16L"):
            return _from_array(np.asarray(value), name, value_range)
        return _from_array(np.asarray(value.convert("RGB")), name, value_range)
    if isinstance(value, np.ndarray):
        return _from_array(value, name, value_range)
    raise ConfigError(f": {a_kind(value)}; give {ACCEPTED}", parameter=name)


def as_views(left: object, right: object, value_range: object = None) -> tuple[View, View]:
    """Both views, checked to be a pair of the same size."""
    declared = check_value_range(value_range)
    views = as_view(left, "left", declared), as_view(right, "right", declared)
    (height, width), (other_h, other_w) = (v.image.shape[:2] for v in views)
    if (height, width) != (other_h, other_w):
        raise DataError(f": {other_w}x{other_h} differs from left's {width}x{height}; a "
                        "rectified pair has equal sizes", parameter="right")
    return views
