import numpy as np
import pytest
import torch
from helpers import warp_right_to_left
from PIL import Image
from tests.conftest import shared_path

from cnnlab.errors import DataError
from cnnlab.stereo.data.datasets import (
    KITTI2012,
    KITTI2015,
    Middlebury,
    SceneFlow,
    SyntheticStereo,
    open_dataset,
)
from cnnlab.stereo.data.io import write_kitti_disparity, write_pfm
from cnnlab.stereo.data.synthetic import render_pair


def _check(sample):
    h, w = sample.disparity.shape
    assert sample.left.shape == sample.right.shape == (h, w, 3)
    assert sample.left.dtype == np.uint8 and sample.disparity.dtype == np.float32
    assert sample.valid.any() and (sample.disparity[sample.valid] > 0).all()
    assert (sample.disparity[~sample.valid] == 0).all()


def test_real_kitti2015():
    dataset = KITTI2015(shared_path("KITTI2015"))
    assert [e.name for e in dataset.entries] == ["000000_10", "000001_10", "000046_10"]
    first = dataset.load(0)
    _check(first)
    assert first.left.shape == (375, 1242, 3)
    assert first.noc is not None and first.noc.sum() <= first.valid.sum()
    assert len(KITTI2015(shared_path("KITTI2015"), "val")) == 0  # frames 160+ only


def test_real_kitti2012_middlebury_sceneflow():
    kitti = KITTI2012(shared_path("KITTI2012"))
    assert len(kitti) == 2
    _check(kitti.load(1))
    middlebury = Middlebury(shared_path("Middlebury"))
    assert [e.name for e in middlebury.entries] == ["cones", "teddy", "tsukuba", "venus"]
    ranges = {}
    for i in range(len(middlebury)):
        sample = middlebury.load(i)
        _check(sample)
        ranges[sample.name] = sample.disparity.max()
    assert ranges["tsukuba"] == 14.0 and ranges["cones"] == 55.0  # 8-bit GT / scale
    flying = SceneFlow(shared_path("SceneFlow"), "all")
    assert len(flying) == 4
    assert len(SceneFlow(shared_path("SceneFlow"), "test")) == 2
    sample = flying.load(0)
    _check(sample)
    assert sample.left.shape == (540, 960, 3) and sample.valid.all()


def test_wrong_layout_names_the_missing_folder(tmp_path):
    (tmp_path / "training" / "image_2").mkdir(parents=True)
    with pytest.raises(DataError, match=r"KITTI 2015: missing folder .*training/image_3"):
        KITTI2015(tmp_path)
    with pytest.raises(DataError, match="KITTI 2012: missing folder"):
        KITTI2012(tmp_path)
    with pytest.raises(DataError, match="SceneFlow: missing folder .*FlyingThings3D"):
        SceneFlow(tmp_path)
    with pytest.raises(DataError, match="unknown stereo dataset"):
        open_dataset("eth3d", tmp_path)


def test_generated_official_layouts(tmp_path):
    """Tiny KITTI 2015 and SceneFlow folders written in the official layouts."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    disparity = np.full((20, 30), 4.5, np.float32)
    for frame in (3, 170):
        name = f"{frame:06d}_10.png"
        for folder in ("image_2", "image_3"):
            (tmp_path / "k/training" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / "k/training" / folder / name)
        write_kitti_disparity(tmp_path / "k/training/disp_occ_0" / name, disparity)
    assert [e.name for e in KITTI2015(tmp_path / "k", "train").entries] == ["000003_10"]
    assert [e.name for e in KITTI2015(tmp_path / "k", "val").entries] == ["000170_10"]
    assert KITTI2015(tmp_path / "k", "val").load(0).disparity[0, 0] == 4.5
    assert KITTI2015(tmp_path / "k").min_size() == (20, 30)  # from the headers
    with pytest.raises(DataError, match="split test: not available here"):
        KITTI2015(tmp_path / "k", "test")
    base = tmp_path / "sf/FlyingThings3D"
    for split in ("TRAIN", "TEST"):
        for side in ("left", "right"):
            folder = base / "frames_cleanpass" / split / "A/0001" / side
            folder.mkdir(parents=True)
            Image.fromarray(image).save(folder / "0006.png")
        write_pfm(base / "disparity" / split / "A/0001/left/0006.pfm", disparity)
    train = SceneFlow(tmp_path / "sf", "train")
    assert len(train) == 1 and train.load(0).disparity.mean() == pytest.approx(4.5)
    (base / "disparity/TEST/A/0001/left/0006.pfm").unlink()
    with pytest.raises(DataError, match="missing disparity"):
        SceneFlow(tmp_path / "sf", "test").load(0)


def test_mismatched_pair_sizes_are_reported(tmp_path):
    scene = tmp_path / "mid" / "scene"
    scene.mkdir(parents=True)
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(scene / "im0.png")
    Image.fromarray(np.zeros((10, 14, 3), np.uint8)).save(scene / "im1.png")
    write_pfm(scene / "disp0GT.pfm", np.ones((10, 12), np.float32))
    with pytest.raises(DataError, match="scene: left .* and right .* differ"):
        Middlebury(tmp_path / "mid").load(0)


@pytest.mark.parametrize("seed", range(8))
def test_synthetic_gt_warps_right_onto_left(seed):
    pair = render_pair(96, 192, 40.0, seed=seed, noise=0.0, use_photos=False)
    assert pair.noc.float().mean() > 0.5
    assert (pair.disparity[pair.valid] > 0).all()
    m = pair.noc

    def errors(disparity):
        return (warp_right_to_left(pair.right, disparity) - pair.left).abs()[:, m]

    # residuals come only from bilinear resampling of the textures (and pixels that border
    # another layer): most pixels match almost exactly, and wrong disparities are far worse
    gt_errors = errors(pair.disparity)
    assert gt_errors.median() < 0.01
    assert gt_errors.mean() < 0.15 * errors(torch.zeros_like(pair.disparity)).mean()
    assert gt_errors.mean() < 0.15 * errors(pair.disparity + 5).mean()


def test_synthetic_dataset_is_deterministic():
    a, b = SyntheticStereo(3, 48, 96, 20.0, seed=5), SyntheticStereo(3, 48, 96, 20.0, seed=5)
    sa, sb = a.load(2), b.load(2)
    assert np.array_equal(sa.left, sb.left) and np.array_equal(sa.disparity, sb.disparity)
    assert not np.array_equal(sa.left, a.load(1).left)
