import re

import numpy as np
import pytest
from PIL import Image

from cnnlab.errors import ConfigError, DataError
from cnnlab.stereo.data.folder import (
    FolderStereo,
    folder_from_globs,
    folder_from_list,
    read_ground_truth,
)
from cnnlab.stereo.data.io import write_kitti_disparity, write_pfm

H, W = 6, 8


def _png(path, seed=0, size=(H, W)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def _disparity(seed=0, size=(H, W)):
    """Integers / 4 on 1..40, exact in every format (KITTI stores 1/256 steps)."""
    values = np.random.default_rng(seed).integers(4, 160, size).astype(np.float32) / 4
    values[0, 0] = 0  # unknown
    return values


def _pfm(path, seed=0, size=(H, W)):
    path.parent.mkdir(parents=True, exist_ok=True)
    disparity = _disparity(seed, size)
    write_pfm(path, disparity)
    return disparity


def _msg(*parts):
    return ".*".join(re.escape(str(p)) for p in parts)


def test_globs_pair_by_wildcards_not_by_order(tmp_path):
    images, truths = {}, {}
    for scene, frames in (("a", ["0001", "0002"]), ("b", ["0001"])):
        for i, frame in enumerate(frames):
            seed = 10 * len(images)
            images[scene, frame] = _png(tmp_path / f"scenes/{scene}/left/{frame}.png", seed)
            _png(tmp_path / f"scenes/{scene}/right/{frame}.png", seed + 1)
            truths[scene, frame] = _pfm(tmp_path / f"scenes/{scene}/disp/{frame}.pfm", seed + i)
    # extra right images that sort first and last: an order-based pairing would shift
    _png(tmp_path / "scenes/a/right/0000.png", 99)
    _png(tmp_path / "scenes/c/right/0001.png", 98)
    dataset = folder_from_globs("scenes/*/left/*.png", "scenes/*/right/*.png",
                                "scenes/*/disp/*.pfm", root=tmp_path)
    assert isinstance(dataset, FolderStereo) and dataset.name == "folder"
    assert len(dataset) == 3 and dataset.has_ground_truth
    expected = [(f"{s}/left/{f}", f"scenes/{s}/left/{f}.png", f"scenes/{s}/right/{f}.png",
                 f"scenes/{s}/disp/{f}.pfm")
                for s, f in (("a", "0001"), ("a", "0002"), ("b", "0001"))]
    assert [(name, *(p.relative_to(tmp_path).as_posix() for p in paths))
            for name, *paths in dataset.pairs] == expected
    sample = dataset.load(1)
    assert sample.name == "a/left/0002"
    np.testing.assert_array_equal(sample.left, images["a", "0002"])
    np.testing.assert_array_equal(sample.disparity, truths["a", "0002"])
    assert not sample.valid[0, 0] and sample.valid.sum() == H * W - 1
    assert dataset.min_size() == (H, W)


def test_globs_recursive_hidden_and_suffix_free_keys(tmp_path, monkeypatch):
    for folder, key in (("data", "x"), ("data/s1/deep", "y"), ("data/.cache", "z")):
        _png(tmp_path / folder / f"l_{key}.png")
        _png(tmp_path / folder / f"r_{key}.png")
        np.save(tmp_path / folder / f"d_{key}.npy", _disparity())
    monkeypatch.chdir(tmp_path)  # relative patterns default to the working folder
    # "d_*" swallows the suffix: its key drops it, so l_x.png pairs with d_x.npy
    dataset = folder_from_globs("data/**/l_*.png", "data/**/r_*.png", "data/**/d_*")
    assert [(n, g.name) for n, _, _, g in dataset.pairs] == [("l_x", "d_x.npy"),
                                                             ("s1/deep/l_y", "d_y.npy")]
    np.testing.assert_array_equal(dataset.load(1).disparity, _disparity())
    flat = folder_from_globs("data/l_?.png", "data/r_[a-z].png", root=tmp_path)
    assert [n for n, *_ in flat.pairs] == ["l_x"] and not flat.has_ground_truth


def test_list_file_with_comments_quotes_commas_and_relative_paths(tmp_path):
    left0 = _png(tmp_path / "my scans/left 1.png", 1)
    _png(tmp_path / "my scans/right 1.png", 2)
    _png(tmp_path / "b/l.png", 3)
    _png(tmp_path / "b/r.png", 4)
    truth = _disparity(5)
    write_kitti_disparity(tmp_path / "b/gt.png", truth)
    _pfm(tmp_path / "gt1.pfm", 6)
    listing = tmp_path / "lists/pairs.txt"
    listing.parent.mkdir()
    listing.write_text("# left right gt\n\n"
                       "'../my scans/left 1.png' \"../my scans/right 1.png\" ../gt1.pfm\n"
                       f"  # indented comment\n{tmp_path}/b/l.png,../b/r.png\t../b/gt.png\n")
    dataset = folder_from_list(listing)
    assert [n for n, *_ in dataset.pairs] == ["my scans/left 1", "b/l"]
    np.testing.assert_array_equal(dataset.load(0).left, left0)
    np.testing.assert_array_equal(dataset.load(1).disparity, truth)  # 16-bit PNG: KITTI
    listing.write_text("../b/l.png ../b/r.png\n")
    name, left, right = folder_from_list(listing).load_views(0)
    assert name == "l" and left.shape == right.shape == (H, W, 3)


@pytest.mark.parametrize("gt_format", ["auto", "explicit"])
def test_each_ground_truth_format_decodes_to_the_disparity(tmp_path, gt_format):
    truth = _disparity()
    write_pfm(tmp_path / "d.pfm", -truth)  # SceneFlow's negative sign is dropped
    write_kitti_disparity(tmp_path / "d.png", truth)
    Image.fromarray((truth * 4).astype(np.uint8)).save(tmp_path / "d8.pgm")  # Middlebury x4
    stored = truth * 2
    stored[0, 1:4] = (-1.0, np.nan, np.inf)  # not positive or not finite: unknown
    np.save(tmp_path / "d.npy", stored)
    cases = (("d.pfm", "pfm", 1.0), ("d.png", "kitti", 1.0), ("d8.pgm", "png8", 4.0),
             ("d.npy", "npy", 2.0))
    for file, kind, scale in cases:
        fmt = "auto" if gt_format == "auto" else kind
        disparity, valid = read_ground_truth(tmp_path / file, fmt, scale)
        expected = truth.copy()
        if kind == "npy":
            expected[0, 1:4] = 0
        assert disparity.dtype == np.float32, file
        np.testing.assert_array_equal(disparity, expected, err_msg=file)
        np.testing.assert_array_equal(valid, expected > 0, err_msg=file)
    # gt_scale divides every format, after its own decoding
    np.testing.assert_array_equal(read_ground_truth(tmp_path / "d.png", gt_scale=2.0)[0],
                                  truth / 2)


def test_dataset_applies_the_scale_and_checks_sizes(tmp_path):
    _png(tmp_path / "l/0.png")
    _png(tmp_path / "r/0.png")
    (tmp_path / "g").mkdir()
    np.save(tmp_path / "g/0.npy", _disparity() * 2)
    dataset = folder_from_globs("l/*.png", "r/*.png", "g/*.npy", gt_scale=2.0, root=tmp_path)
    np.testing.assert_array_equal(dataset.load(0).disparity, _disparity())
    np.save(tmp_path / "g/0.npy", np.ones((H, W + 1)))
    with pytest.raises(DataError, match=_msg(tmp_path / "g/0.npy", f"{W + 1}x{H}", f"{W}x{H}")):
        dataset.load(0)
    _png(tmp_path / "r/0.png", size=(H + 1, W))
    with pytest.raises(DataError, match=_msg(tmp_path / "r/0.png", tmp_path / "l/0.png")):
        dataset.load_views(0)


def test_without_ground_truth_load_refuses_and_load_views_reads(tmp_path):
    _png(tmp_path / "l/0.png")
    _png(tmp_path / "r/0.png")
    dataset = folder_from_globs("l/*.png", "r/*.png", root=tmp_path)
    assert not dataset.has_ground_truth and dataset.pairs[0][3] is None
    with pytest.raises(DataError, match="no ground-truth disparity for 0.png"):
        dataset.load(0)
    assert dataset.load_views(0)[0] == "0"


def test_glob_errors_name_the_pattern_and_file(tmp_path):
    for frame in ("1", "2", "3"):
        _png(tmp_path / f"l/{frame}.png")
    _png(tmp_path / "r/2.png")
    _pfm(tmp_path / "g/1.pfm")

    def build(left="l/*.png", right="r/*.png", gt=None, **kwargs):
        return folder_from_globs(left, right, gt, root=tmp_path, **kwargs)

    with pytest.raises(ConfigError, match=_msg("'r/*/*.png'", "2", "'l/*.png'", "1")):
        build(right="r/*/*.png")
    with pytest.raises(ConfigError, match=_msg("'l/a**.png'", "whole path component")):
        build(left="l/a**.png")
    with pytest.raises(DataError, match=_msg(tmp_path / "l/1.png", "no right file", "'r/*.png'",
                                             "2 of 3")):
        build()
    _png(tmp_path / "r/1.png")
    _png(tmp_path / "r/3.png")
    with pytest.raises(DataError, match=_msg(tmp_path / "l/2.png", "ground-truth", "'g/*.pfm'",
                                             "2 of 3")):
        build(gt="g/*.pfm")
    with pytest.raises(DataError, match=_msg("'g/*.npy'", f"looked in {tmp_path / 'g'}")):
        build(gt="g/*.npy")
    with pytest.raises(DataError, match=_msg("'nowhere/*.png'", tmp_path / "nowhere",
                                             "does not exist")):
        build(right="nowhere/*.png")
    _png(tmp_path / "l/1.jpg")
    with pytest.raises(DataError, match=_msg("'l/*'", tmp_path / "l/1.jpg",
                                             tmp_path / "l/1.png", "same wildcard parts")):
        build(left="l/*")
    with pytest.raises(ConfigError, match="gt_scale 0"):
        build(gt_scale=0)
    with pytest.raises(ConfigError, match="gt_format exr"):
        build(gt_format="exr")


def test_list_errors_name_the_line(tmp_path):
    for name in ("l.png", "r.png"):
        _png(tmp_path / name)
    _pfm(tmp_path / "g.pfm")
    listing = tmp_path / "pairs.txt"
    cases = (("l.png r.png g.pfm\nl.png missing.png\n", ":2: .*missing.png does not exist"),
             ("# c\nl.png\n", ":2: 1 field"),
             ("l.png r.png g.pfm g.pfm\n", ":1: 4 field"),
             ("l.png r.png g.pfm\n\nl.png r.png\n", ":3: line 1 has a ground truth but line 3"),
             ("l.png r.png\n'l.png r.png g.pfm\n", ":2: cannot split"),
             ("l.png r.png\nl.png r.png\n", ":2: .*l.png is already listed on line 1"),
             ("# nothing\n", ": no pairs listed"))
    for text, message in cases:
        listing.write_text(text)
        with pytest.raises(DataError, match=re.escape(str(listing)) + message):
            folder_from_list(listing)
    with pytest.raises(DataError, match=_msg(tmp_path / "none.txt", "no such list file")):
        folder_from_list(tmp_path / "none.txt")


def test_ground_truth_file_errors(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "d.tif").write_bytes(b"")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "d8.png")
    cases = (("cube.npy", "auto", r"shape \(2, 3, 4\)"), ("text.npy", "auto", "dtype <U1"),
             ("objects.npy", "auto", "not a readable .npy"), ("d.tif", "auto", "pass gt_format"),
             ("d8.png", "kitti", "expected a 16-bit"))
    for file, fmt, message in cases:
        with pytest.raises(DataError, match=re.escape(str(tmp_path / file)) + ".*" + message):
            read_ground_truth(tmp_path / file, fmt)
