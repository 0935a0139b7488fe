import numpy as np
import pytest
import torch

from cnnlab.stereo.evaluation.metrics import error_counts, fill_holes_background, rates
from cnnlab.stereo.inference.visualize import (
    colorize_disparity,
    colorize_error,
    point_cloud,
    write_ply,
)


def test_epe_d1_and_bad_thresholds():
    target = torch.tensor([[10.0, 100.0, 50.0, 20.0, 0.0]])
    prediction = torch.tensor([[10.5, 104.0, 53.5, 22.5, 9.0]])
    mask = target > 0
    counts = error_counts(prediction, target, mask)
    assert counts["pixels"] == 4 and counts["abs_error"] == pytest.approx(10.5)
    # errors 0.5, 4 (4% of 100: not D1), 3.5 (7% of 50: D1), 2.5
    assert counts["d1"] == 1 and counts["bad3"] == 2 and counts["bad2"] == 3
    assert counts["bad1"] == 3
    r = rates(counts)
    assert r["epe"] == pytest.approx(10.5 / 4) and r["d1"] == 25.0


def test_aggregation_weights_by_pixels():
    a = error_counts(torch.zeros(1, 10), torch.ones(1, 10), torch.ones(1, 10, dtype=bool))
    b = error_counts(torch.full((1, 2), 10.0), torch.ones(1, 2), torch.ones(1, 2, dtype=bool))
    total = {k: a[k] + b[k] for k in a}
    assert rates(total)["epe"] == pytest.approx((10 * 1 + 2 * 9) / 12)


def test_background_hole_filling():
    disparity = np.array([[0, 5, 0, 0, 8, 0], [0, 0, 0, 0, 0, 0]], np.float32)
    valid = disparity > 0
    filled = fill_holes_background(disparity, valid)
    assert filled.tolist() == [[5, 5, 5, 5, 8, 8], [0, 0, 0, 0, 0, 0]]


def test_colour_maps_and_point_cloud(tmp_path):
    disparity = np.linspace(0, 64, 200, dtype=np.float32).reshape(10, 20)
    colours = colorize_disparity(disparity, 64.0)
    assert colours.shape == (10, 20, 3) and (colours[0, 0] == 0).all()  # invalid = black
    assert len({tuple(c) for c in colours.reshape(-1, 3)}) > 50
    error_image = colorize_error(disparity + 0.1, disparity, disparity > 0)
    assert (error_image[disparity > 0] == (49, 54, 149)).all()  # tiny error -> dark blue
    depth = np.full((10, 20), 5.0, np.float32)
    xyz, rgb = point_cloud(depth, colours, focal=100.0)
    assert xyz.shape == (200, 3) and np.allclose(xyz[:, 2], 5.0)
    path = write_ply(tmp_path / "c.ply", xyz, rgb)
    raw = path.read_bytes()
    header, body = raw.split(b"end_header\n")
    assert b"element vertex 200" in header and len(body) == 200 * 15
