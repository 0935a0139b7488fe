import numpy as np
import pytest
from PIL import Image
from tests.conftest import shared_path

from cnnlab.errors import DataError
from cnnlab.stereo.data.io import (
    Calibration,
    read_calibration,
    read_image,
    read_kitti_disparity,
    read_pfm,
    read_scaled_disparity,
    write_kitti_disparity,
    write_pfm,
)


@pytest.mark.parametrize("little_endian", [True, False])
@pytest.mark.parametrize("shape", [(5, 7), (4, 6, 3)])
def test_pfm_roundtrip(tmp_path, little_endian, shape):
    array = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    array[0, 0] = np.inf
    path = write_pfm(tmp_path / "x.pfm", array, little_endian)
    assert (b"-1.0" in path.read_bytes()[:30]) == little_endian
    np.testing.assert_array_equal(read_pfm(path), array)


def test_pfm_rows_are_stored_bottom_up(tmp_path):
    array = np.array([[1, 2], [3, 4]], dtype=np.float32)
    raw = write_pfm(tmp_path / "x.pfm", array).read_bytes()
    assert np.frombuffer(raw[-16:], "<f4").tolist() == [3, 4, 1, 2]


def test_pfm_errors(tmp_path):
    bad = tmp_path / "bad.pfm"
    bad.write_bytes(b"P6\n2 2\n255\n")
    with pytest.raises(DataError, match="bad.pfm: not a PFM"):
        read_pfm(bad)
    short = tmp_path / "short.pfm"
    short.write_bytes(b"Pf\n4 4\n-1.0\n" + b"\0" * 8)
    with pytest.raises(DataError, match="short.pfm: PFM data has 8 bytes"):
        read_pfm(short)


def test_kitti_png_roundtrip(tmp_path):
    disparity = np.array([[0.0, 1.5, 255.99], [12.25, -1.0, np.nan]], dtype=np.float32)
    path = write_kitti_disparity(tmp_path / "d.png", disparity)
    assert Image.open(path).mode.startswith("I")
    decoded, valid = read_kitti_disparity(path)
    assert valid.tolist() == [[False, True, True], [True, False, False]]
    np.testing.assert_allclose(decoded[valid], [1.5, 255.99, 12.25], atol=1 / 256)


def test_eight_bit_png_is_not_a_kitti_disparity(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "grey.png")
    with pytest.raises(DataError, match="grey.png: mode L, expected a 16-bit"):
        read_kitti_disparity(tmp_path / "grey.png")


def test_read_image_modes(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 7)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "palette.png")
    for name in ("grey.png", "grey16.png", "rgba.png", "palette.png"):
        image = read_image(tmp_path / name)
        assert image.shape == (3, 4, 3) and image.dtype == np.uint8, name
        np.testing.assert_allclose(image[..., 1], grey, atol=1)
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.png: not a readable image"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(DataError, match="missing.png: no such file"):
        read_image(tmp_path / "missing.png")


def test_middlebury_scaled_gt(tmp_path):
    Image.fromarray(np.array([[0, 64], [128, 255]], np.uint8)).save(tmp_path / "disp2.png")
    disparity, valid = read_scaled_disparity(tmp_path / "disp2.png", 4.0)
    assert disparity.tolist() == [[0, 16], [32, 63.75]] and not valid[0, 0]


def test_calibration_kitti_and_middlebury(tmp_path):
    calib = read_calibration(shared_path("KITTI2015", "training", "calib_cam_to_cam",
                                         "000000.txt"))
    assert calib.focal == pytest.approx(721.5377)
    assert calib.baseline == pytest.approx(0.532725, abs=1e-4)
    assert calib.depth(np.array([calib.focal * calib.baseline / 10.0]))[0] == pytest.approx(10.0)
    (tmp_path / "calib.txt").write_text(
        "cam0=[3997.684 0 1176.728; 0 3997.684 1011.728; 0 0 1]\n"
        "cam1=[3997.684 0 1307.839; 0 3997.684 1011.728; 0 0 1]\n"
        "doffs=131.111\nbaseline=193.001\nwidth=2964\nheight=1988\nndisp=280\n")
    middlebury = read_calibration(tmp_path / "calib.txt")
    assert middlebury == Calibration(3997.684, 0.193001, 131.111)
    (tmp_path / "none.txt").write_text("hello: world\n")
    with pytest.raises(DataError, match="none.txt: no KITTI"):
        read_calibration(tmp_path / "none.txt")


def test_pfm_disparity_reader(tmp_path):
    from cnnlab.stereo.data.io import read_pfm_disparity

    array = np.array([[-2.5, np.inf], [0.0, 7.0]], dtype=np.float32)
    disparity, valid = read_pfm_disparity(write_pfm(tmp_path / "d.pfm", array))
    assert valid.tolist() == [[True, False], [False, True]]
    assert disparity.tolist() == [[2.5, 0.0], [0.0, 7.0]]
    rgb = np.stack([array, np.zeros_like(array), np.zeros_like(array)], axis=2)
    assert np.array_equal(read_pfm_disparity(write_pfm(tmp_path / "c.pfm", rgb))[0], disparity)
