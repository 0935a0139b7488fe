"""Stereo file formats: PFM, KITTI 16-bit disparity PNG, Middlebury scaled PGM/PNG, plain
images (8/16-bit, grey/RGB/RGBA/palette -> RGB uint8) and calibration files."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.data.image import SIXTEEN_BIT_MODES, open_image, read_rgb
from cnnlab.engine.atomic import atomic_write
from cnnlab.engine.plotting import PNG_COMPRESSION
from cnnlab.errors import DataError


def read_pfm(path: str | Path) -> np.ndarray:
    """(H, W) or (H, W, 3) float32, rows top to bottom; either endianness (scale sign)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            header = handle.readline().strip()
            if header not in (b"PF", b"Pf"):
                raise DataError(f"{path}: not a PFM file (header {header[:8]!r})")
            dims = handle.readline()
            while dims.startswith(b"#"):
                dims = handle.readline()
            match = re.match(rb"^\s*(\d+)\s+(\d+)\s*$", dims)
            if not match:
                raise DataError(f"{path}: malformed PFM size line {dims[:40]!r}")
            width, height = int(match.group(1)), int(match.group(2))
            scale_line = handle.readline().strip()
            scale = float(scale_line)
            data = handle.read()
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read PFM ({exc})") from None
    if not (np.isfinite(scale) and scale != 0):  # its sign is the byte order: 0 says neither
        raise DataError(f"{path}: malformed PFM scale {scale_line[:20].decode(errors='replace')}"
                        " (expected a finite non-zero number: negative for little-endian, "
                        "positive for big-endian data)")
    if width == 0 or height == 0:
        raise DataError(f"{path}: PFM of size {width}x{height}, an empty image")
    channels = 3 if header == b"PF" else 1
    count = width * height * channels
    if len(data) < 4 * count:
        raise DataError(f"{path}: PFM data has {len(data)} bytes, expected {4 * count}")
    dtype = "<f4" if scale < 0 else ">f4"
    array = np.frombuffer(data, dtype=dtype, count=count).astype(np.float32)
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.ascontiguousarray(np.flipud(array.reshape(shape)))


def read_pfm_disparity(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A PFM disparity map -> (|disparity| float32, 0 where unknown; valid = finite and > 0)."""
    disparity = read_pfm(path)
    disparity = np.abs(disparity[..., 0] if disparity.ndim == 3 else disparity)
    valid = np.isfinite(disparity) & (disparity > 0)
    return np.where(valid, disparity, 0).astype(np.float32), valid


def write_pfm(path: str | Path, array: np.ndarray, little_endian: bool = True) -> Path:
    """Write a (H, W) or (H, W, 3) float array as PFM (bottom-to-top rows), atomically."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"PFM needs (H, W) or (H, W, 3), got {array.shape}")
    header = b"PF\n" if array.ndim == 3 else b"Pf\n"
    header += f"{array.shape[1]} {array.shape[0]}\n".encode()
    header += b"-1.0\n" if little_endian else b"1.0\n"
    body = np.flipud(array).astype("<f4" if little_endian else ">f4").tobytes()
    return atomic_write(Path(path), lambda tmp: tmp.write_bytes(header + body))


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from 8/16-bit grey, RGB, RGBA, LA or palette images."""
    return read_rgb(path)


def read_kitti_disparity(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """KITTI 16-bit PNG -> (disparity float32 = value / 256, valid = value > 0)."""
    path = Path(path)
    image = open_image(path)
    if image.mode not in SIXTEEN_BIT_MODES:
        raise DataError(f"{path}: mode {image.mode}, expected a 16-bit KITTI disparity PNG")
    raw = np.asarray(image, dtype=np.int64)
    if raw.min() < 0 or raw.max() > 65535:
        raise DataError(f"{path}: values outside 0-65535 for a 16-bit disparity PNG")
    return (raw / 256.0).astype(np.float32), raw > 0


def write_kitti_disparity(path: str | Path, disparity: np.ndarray,
                          valid: np.ndarray | None = None) -> Path:
    """Write disparity * 256 as 16-bit PNG; invalid pixels (and d <= 0) are stored as 0."""
    disparity = np.asarray(disparity, dtype=np.float64)
    mask = np.isfinite(disparity) & (disparity > 0)
    scaled = np.round(np.where(mask, disparity, 0.0) * 256.0)
    values = np.clip(scaled, 0, 65535).astype(np.uint16)
    if valid is not None:
        mask &= valid
    values = np.where(mask, np.maximum(values, 1), 0).astype(np.uint16)
    image = Image.fromarray(values)  # uint16 -> mode I;16
    return atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG",
                                                           compress_level=PNG_COMPRESSION))


def read_scaled_disparity(path: str | Path, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Middlebury 2001/2003 8-bit GT (PGM/PNG): disparity = value / scale, 0 = unknown."""
    path = Path(path)
    image = open_image(path)
    raw = np.asarray(image.convert("L") if image.mode not in ("L", "I;16", "I") else image,
                     dtype=np.float32)
    return raw / scale, raw > 0


@dataclass(frozen=True)
class Calibration:
    """What depth needs: focal length (px), baseline (m) and the Middlebury disparity offset."""

    focal: float
    baseline: float
    doffs: float = 0.0

    def __post_init__(self) -> None:
        values = (self.focal, self.baseline, self.doffs)
        if not all(np.isfinite(values)) or self.focal <= 0 or self.baseline <= 0:
            raise ValueError(f"focal length {self.focal} px and baseline {self.baseline} m must "
                             "be positive numbers (and the disparity offset finite)")

    def depth(self, disparity: np.ndarray) -> np.ndarray:
        """Metres: f * B / (d + doffs); 0 where the disparity is not positive."""
        d = np.asarray(disparity, dtype=np.float64) + self.doffs
        with np.errstate(divide="ignore"):
            depth = np.where(d > 0, self.focal * self.baseline / np.maximum(d, 1e-9), 0.0)
        return depth.astype(np.float32)


def _matrix(values: str, rows: int, cols: int) -> np.ndarray:
    numbers = [float(v) for v in re.split(r"[\s;\[\]]+", values.strip()) if v]
    return np.array(numbers[:rows * cols]).reshape(rows, cols)


def read_calibration(path: str | Path) -> Calibration:
    """KITTI calib_cam_to_cam / calib (P_rect_02/03 or P2/P3) or Middlebury calib.txt."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read calibration ({exc})") from None
    entries = {}
    for line in lines:
        key, sep, value = line.partition(":") if ":" in line.split("=")[0] else line.partition("=")
        if sep:
            entries[key.strip()] = value.strip()
    try:
        for left, right in (("P_rect_02", "P_rect_03"), ("P2", "P3")):
            if left in entries and right in entries:
                p2, p3 = _matrix(entries[left], 3, 4), _matrix(entries[right], 3, 4)
                focal = float(p2[0, 0])
                if focal == 0:
                    raise ValueError(f"{left} has a focal length of 0")
                return Calibration(focal, (p2[0, 3] - p3[0, 3]) / focal)
        if "cam0" in entries and "baseline" in entries:
            cam0 = _matrix(entries["cam0"], 3, 3)
            return Calibration(cam0[0, 0], float(entries["baseline"]) / 1000.0,
                               float(entries.get("doffs", 0.0)))
    except (ValueError, IndexError, ZeroDivisionError) as exc:
        raise DataError(f"{path}: malformed calibration ({exc})") from None
    raise DataError(f"{path}: no KITTI (P_rect_02/P_rect_03, P2/P3) or Middlebury "
                    "(cam0, baseline) entries")
