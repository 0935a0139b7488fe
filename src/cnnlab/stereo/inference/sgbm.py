"""OpenCV StereoSGBM as the classical baseline, evaluated through the same metrics."""

from __future__ import annotations

import numpy as np

from cnnlab.errors import ConfigError, DataError


def check_range(max_disparity: int, width: int, block_size: int = 5) -> int:
    """SGBM's number of disparities (``max_disparity`` rounded up to 16), or a one-line error
    when it does not fit an image ``width`` pixels wide (OpenCV would fail an assertion)."""
    num_disparities = int(np.ceil(max_disparity / 16.0)) * 16
    if num_disparities < 16:
        raise ConfigError(f"{max_disparity}: SGBM needs at least 1", parameter="max_disparity")
    if num_disparities + block_size >= width:
        raise DataError(f"{max_disparity}: SGBM's range of {num_disparities} disparities is "
                        f"wider than the {width}-pixel image; pass a smaller one",
                        parameter="max_disparity")
    return num_disparities


def sgbm_disparity(left: np.ndarray, right: np.ndarray, max_disparity: int = 192,
                   block_size: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 pair -> (disparity float32, valid bool); holes are invalid.

    Settings follow OpenCV's stereo_match sample (3-way mode, P1 = 8*3*b^2, P2 = 32*3*b^2,
    uniqueness 10, speckle filtering), with the number of disparities rounded up to 16.
    """
    num_disparities = check_range(max_disparity, left.shape[1], block_size)
    try:
        import cv2
    except ImportError:
        raise ConfigError("the SGBM baseline needs OpenCV: pip install 'cnnlab[stereo]'") from None
    matcher = cv2.StereoSGBM_create(
        minDisparity=0, numDisparities=num_disparities, blockSize=block_size,
        P1=8 * 3 * block_size**2, P2=32 * 3 * block_size**2, disp12MaxDiff=1,
        uniquenessRatio=10, speckleWindowSize=100, speckleRange=2,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
    raw = matcher.compute(np.ascontiguousarray(left[..., ::-1]),
                          np.ascontiguousarray(right[..., ::-1]))  # OpenCV wants BGR
    disparity = raw.astype(np.float32) / 16.0
    valid = raw > 0
    return np.where(valid, disparity, 0).astype(np.float32), valid
