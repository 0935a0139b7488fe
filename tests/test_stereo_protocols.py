"""Published protocols: each one's masks and aggregation on hand-made pairs with known answers,
and ``stereo eval --protocol`` on the shared data."""

import json

import numpy as np
import pytest
from tests.conftest import shared_path

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.stereo.data.datasets import StereoSample
from cnnlab.stereo.evaluation.evaluate import evaluate_samples
from cnnlab.stereo.evaluation.protocols import get_protocol


def sample(name, disparity, noc=None, foreground=None, valid=None):
    disparity = np.asarray(disparity, dtype=np.float32)
    image = np.zeros((*disparity.shape, 3), dtype=np.uint8)
    valid = disparity > 0 if valid is None else valid
    return StereoSample(name, image, image, disparity, valid, noc, foreground)


def offset_by(errors):
    """A predictor answering gt + errors[name] (a scalar or a map)."""
    def predict(s):
        return s.disparity + np.asarray(errors[s.name], dtype=np.float32), np.ones(
            s.disparity.shape, bool)
    return predict


def test_sceneflow_scores_only_0_below_gt_below_192_and_sums_pixels():
    protocol = get_protocol("sceneflow")
    # pair a: 4 pixels scored (10, 20, 100, 191.5), 200 and 192 are not, 0 has no GT
    a = sample("a", [[10, 20, 100, 191.5], [200, 192, 0, 0]])
    b = sample("b", [[50, 0, 0, 0], [0, 0, 0, 0]])  # one pixel scored
    errors = {"a": [[1, 1, 1, 1], [50, 50, 0, 0]], "b": 6.0}
    result = evaluate_samples(offset_by(errors), [a, b], masks=protocol.masks)
    all_ = result["aggregate"]["all"]
    assert all_["pixels"] == 5
    assert all_["epe"] == pytest.approx((4 * 1 + 6) / 5)  # pixels summed: 2.0
    assert all_["mean_per_image_epe"] == pytest.approx((1 + 6) / 2)  # per image: 3.5
    assert all_["d1"] == pytest.approx(100 * 1 / 5)  # only b's 6 px error (> 3 and > 5% of 50)


def test_kitti2015_val_d1_on_all_noc_bg_fg():
    protocol = get_protocol("kitti2015-val")
    gt = np.full((2, 4), 40.0, np.float32)
    noc = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    cars = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], bool)
    # errors: 4 px on the cars' two occluded pixels (D1: > 3 and > 2 = 5% of 40), 2.5 px on
    # one background pixel (not D1: below 3 px), exact elsewhere
    error = np.array([[0, 2.5, 0, 0], [0, 0, 4, 4]], np.float32)
    result = evaluate_samples(offset_by({"k": error}), [sample("k", gt, noc, cars)],
                              masks=protocol.masks)["aggregate"]
    assert result["all"]["d1"] == pytest.approx(100 * 2 / 8)
    assert result["noc"]["d1"] == 0.0 and result["noc"]["pixels"] == 6
    assert result["fg"]["d1"] == pytest.approx(100 * 2 / 4)
    assert result["bg"]["d1"] == 0.0 and result["bg"]["epe"] == pytest.approx(2.5 / 4)
    assert protocol.metrics[0] == "d1"


def test_kitti2015_without_object_maps_has_no_bg_fg():
    masks = get_protocol("kitti2015-val").masks(sample("k", np.full((2, 2), 9.0)))
    assert set(masks) == {"all"}


def test_kitti2012_reports_bad3_first():
    protocol = get_protocol("kitti2012-val")
    gt = np.full((1, 4), 100.0, np.float32)
    error = np.array([[0, 3.5, 4.0, 10.0]], np.float32)  # > 3 px thrice; D1 (> 5 px) once
    result = evaluate_samples(offset_by({"k": error}), [sample("k", gt)],
                              masks=protocol.masks)["aggregate"]["all"]
    assert protocol.metrics[0] == "bad3"
    assert result["bad3"] == pytest.approx(75.0) and result["d1"] == pytest.approx(25.0)


def test_middlebury_uses_the_scene_mask_else_one_derived_from_the_ground_truth():
    protocol = get_protocol("middlebury")
    given = np.array([[1, 0, 1, 1]], bool)
    masks = protocol.masks(sample("m", np.full((1, 4), 1.0), noc=given))
    assert np.array_equal(masks["nonocc"], given)
    # a background at 1 px and a foreground step at 3 px: the foreground (pixels 3, 4) lands
    # on the right view's columns 0 and 1, hiding background pixels 1 and 2 (whose matches are
    # those columns); pixel 0's match leaves the image
    disparity = np.array([[1, 1, 1, 3, 3, 1, 1, 1]], np.float32)
    derived = protocol.masks(sample("m", disparity))["nonocc"]
    assert derived.tolist() == [[False, False, False, True, True, True, True, True]]


def test_bad2_is_the_middlebury_figure():
    protocol = get_protocol("middlebury")
    gt = np.full((1, 4), 10.0, np.float32)
    error = np.array([[0, 1.5, 2.5, 0]], np.float32)
    result = evaluate_samples(offset_by({"m": error}), [sample("m", gt, noc=np.ones((1, 4),
                                                                               bool))],
                              masks=protocol.masks)["aggregate"]
    assert protocol.metrics[0] == "bad2" and result["nonocc"]["bad2"] == pytest.approx(25.0)


def test_unknown_protocol_is_named():
    with pytest.raises(ConfigError, match="protocol 'nope': unknown"):
        get_protocol("nope")


def test_cli_protocol_on_the_shared_kitti_pairs(tmp_path, capsys):
    root = shared_path("KITTI2015")
    # the shared copy has frames 0, 1 and 46: none in the published validation split
    assert main(["stereo", "eval", "--protocol", "kitti2015-val", "--model", "sgbm",
                 "--data-root", str(root)]) == 1
    assert "--split val: no kitti2015 pairs" in capsys.readouterr().err
    out = tmp_path / "eval.json"
    assert main(["stereo", "eval", "--protocol", "kitti2015-val", "--split", "all", "--model",
                 "sgbm", "--data-root", str(root), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "not kitti2015-val's published split" in captured.err
    assert "kitti2015-val: KITTI 2015 validation pairs" in captured.out
    payload = json.loads(out.read_text())
    assert payload["protocol"]["name"] == "kitti2015-val" and payload["split"] == "all"
    assert payload["protocol"]["published"][0]["value"] == 2.32
    regions = payload["results"]["kitti2015/sgbm"]["aggregate"]
    assert set(regions) == {"all", "noc"}  # one pair has disp_noc_0; no object maps here
    assert regions["noc"]["pixels"] < regions["all"]["pixels"]


def test_cli_protocol_and_dataset_exclude_each_other(capsys):
    assert main(["stereo", "eval", "--protocol", "sceneflow", "--dataset", "kitti2015",
                 "--model", "sgbm", "--data-root", "x"]) == 1
    assert "--protocol sceneflow and --dataset" in capsys.readouterr().err
    assert main(["stereo", "eval", "--model", "sgbm"]) == 1
    assert "--dataset or --protocol is required" in capsys.readouterr().err
