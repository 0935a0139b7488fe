"""The public stereo face: load, StereoModel.predict and its Disparity, predict_folder,
evaluate and report; views of every kind, errors that name the argument, and the same numbers
as the command line."""

import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import textured_pair
from PIL import Image
from tests.conftest import shared_path, shared_weights
from tests.helpers import fresh_python

import cnnlab.stereo as stereo
from cnnlab.cli import main
from cnnlab.engine.precision import native_precisions
from cnnlab.errors import CheckpointError, CnnlabError, ConfigError, DataError
from cnnlab.stereo.data.io import read_image, read_kitti_disparity, read_pfm, write_pfm
from cnnlab.stereo.inference.methods import disparity_of, pair_outputs

REPO = Path(__file__).resolve().parents[1]
KITTI_PAIR = "000000_10.png"
CROP = (slice(-256, None), slice(0, 512))  # bottom-left 256x512, as cnnlab.exercises uses




@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return stereo.load(tiny_checkpoint)



def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, text
    return text


# ------------------------------------------------------------------ real data


def _kitti(folder: str) -> Path:
    return shared_path("KITTI2015", "training", folder, KITTI_PAIR)


@pytest.fixture(scope="module")
def official():
    root = shared_weights("PSMNet", "pretrained_model_KITTI2015.tar").parents[1]
    return stereo.load("psmnet-kitti2015", weights_root=root)


@pytest.mark.slow
def test_official_weights_on_a_whole_kitti_pair_as_the_command_line_runs_them(official):
    """KITTI 2015 000000_10, 1242x375: the map the command line's path gives, bit for bit, and
    EPE 0.302 px against its ground truth (measured in bf16 on a 2-core AVX-512 BF16 Xeon:
    0.302 px, D1 0.27%, 10 s for the pair)."""
    assert official.precision == ("bf16" if "bf16" in native_precisions(official.device)
                                  else "fp32")
    started = time.perf_counter()
    result = official.predict(_kitti("image_2"), _kitti("image_3"))
    seconds = time.perf_counter() - started
    left, right = read_image(_kitti("image_2")), read_image(_kitti("image_3"))
    expected = pair_outputs(official.network, official.card, left, right,
                            official.precision)["disparity"]
    assert np.array_equal(np.asarray(result), expected)
    scores = result.score(_kitti("disp_occ_0"))
    assert abs(scores.epe - 0.302) < 0.01 and scores.d1 < 0.5, (scores, seconds)
    assert result.name == "000000_10" and result.shape == (375, 1242)


def test_official_weights_on_a_kitti_crop_given_as_floats(official):
    """The bottom-left 256x512 of KITTI 2015 000000_10 as floats in [0, 1], which cast to uint8
    would be nearly black (EPE 23 px): with value_range=(0, 1), the map the command line's path
    gives the uint8 crop, EPE 0.32 px (bf16)."""
    left, right = (read_image(_kitti(f))[CROP] for f in ("image_2", "image_3"))
    truth, valid = (a[CROP] for a in read_kitti_disparity(_kitti("disp_occ_0")))
    result = official.predict(left / 255.0, right / 255.0, value_range=(0, 1))
    expected = pair_outputs(official.network, official.card, left, right,
                            official.precision)["disparity"]
    assert np.array_equal(np.asarray(result), expected)
    scores = result.score((truth, valid))
    assert scores.epe < 0.4 and scores.pixels == int(valid.sum()), scores


# ------------------------------------------------------------------ views and their errors


def test_float_views_in_a_declared_range_give_the_uint8_map(tiny):
    left, right = textured_pair()
    reference = np.asarray(tiny.predict(left, right))
    assert reference.shape == (48, 96) and reference.dtype == np.float32
    unit = [(v / 255.0).astype(np.float32) for v in (left, right)]
    assert np.array_equal(np.asarray(tiny.predict(*unit, value_range=(0, 1))), reference)
    wide = [v.astype(np.float64) for v in (left, right)]
    assert np.array_equal(np.asarray(tiny.predict(*wide, value_range=(0, 255))), reference)
    nudged = [np.clip(v + 0.4 / 255, 0, 1) for v in unit]  # less than half a step: rounded back
    assert np.array_equal(np.asarray(tiny.predict(*nudged, value_range=(0, 1))), reference)
    with pytest.raises(ConfigError) as caught:
        tiny.predict(left / 255.0, right / 255.0)
    assert one_line(caught.value).startswith("left: a float64 array")
    assert "value_range=(0, 1)" in str(caught.value)


def test_disparity_of_refuses_what_is_not_uint8(tiny):
    left, right = textured_pair()
    with pytest.raises(ConfigError, match=r"^left: a float64 array .*uint8"):
        disparity_of(tiny.network, tiny.card, left / 255.0, right / 255.0)
    with pytest.raises(ConfigError, match="^right: shape"):
        disparity_of(tiny.network, tiny.card, left, right[:40])
    with pytest.raises(ConfigError, match="^precision 'bf61': expected fp32, bf16, fp16 or int8"):
        disparity_of(tiny.network, tiny.card, left, right, precision="bf61")


def test_pil_images_paths_and_grey_arrays(tiny, tmp_path):
    left, right = textured_pair()
    Image.fromarray(left).save(tmp_path / "l.png")
    Image.fromarray(right).save(tmp_path / "r.png")
    reference = np.asarray(tiny.predict(left, right))
    from_files = tiny.predict(tmp_path / "l.png", str(tmp_path / "r.png"))
    from_pil = tiny.predict(Image.fromarray(left), Image.open(tmp_path / "r.png"))
    assert np.array_equal(np.asarray(from_files), reference)
    assert np.array_equal(np.asarray(from_pil), reference)
    assert from_files.name == "l" and from_pil.name == "pair"
    grey = left[..., 0]
    with pytest.warns(UserWarning, match="greyscale image, replicated to RGB"):
        result = tiny.predict(grey, np.roll(grey, -4, axis=1))
    assert any("greyscale" in note for note in result.notes)


# (left, right, options) from the good views a and b and the test's folder t; the error
BAD_INPUTS = [
    (lambda a, b, t: (t / "none.png", b, {}), DataError, "left "),
    (lambda a, b, t: (a, t, {}), DataError, "right "),  # a folder
    (lambda a, b, t: (a[..., 0] / 255.0, b, {}), ConfigError, "left: a float64"),
    (lambda a, b, t: (np.dstack([a, a[..., :1]]), b, {}), ConfigError, "left: a 4-channel"),
    (lambda a, b, t: (a[None], b, {}), ConfigError, "left: an array of shape"),
    (lambda a, b, t: (a, b[:, :80], {}), DataError, "right: 80x48 differs"),
    (lambda a, b, t: (torch.from_numpy(a), b, {}), ConfigError, "left: a Tensor"),
    (lambda a, b, t: (a, None, {}), ConfigError, "right is required"),
    (lambda a, b, t: (a.astype(bool), b, {}), ConfigError, "left: a bool array"),
    (lambda a, b, t: (a / 255.0 + 0.5, b / 255.0, {"value_range": (0, 1)}), DataError,
     "left: values from"),
    (lambda a, b, t: (a, b, {"value_range": (1, 0)}), ConfigError, "value_range"),
    (lambda a, b, t: (a, b, {"precision": "bf61"}), ConfigError,
     "precision bf61: choose from auto, fp32, bf16, fp16"),
    (lambda a, b, t: (a, b, {"scale": 1.5}), ConfigError,
     "scale must be a number in (0, 1], got 1.5"),
    (lambda a, b, t: (a, b, {"tile": "big"}), ConfigError, "tile 'big': expected"),
    (lambda a, b, t: (a, b, {"max_memory": -1}), ConfigError,
     "max_memory must be a number > 0, got -1"),
    (lambda a, b, t: (a, b, {"tile": (40, 40)}), ConfigError, "tile 40x40: a height"),
]


@pytest.mark.parametrize("given, kind, start", BAD_INPUTS)
def test_bad_inputs_get_one_line_naming_the_argument(tiny, tmp_path, given, kind, start):
    left, right, options = given(*textured_pair(), tmp_path)
    with pytest.raises(kind) as caught:
        tiny.predict(left, right, **options)
    assert one_line(caught.value).startswith(start), str(caught.value)


def test_load_refuses_in_one_line_naming_the_argument(tmp_path, isolated_roots):
    cases = [
        (lambda: stereo.load("psmnet-kitti2015", weights_root=tmp_path), CheckpointError,
         "psmnet-kitti2015: pretrained_model_KITTI2015.tar not found in"),
        (lambda: stereo.load("no-such-weights"), CheckpointError,
         "no-such-weights: no such checkpoint, run directory or registered weights"),
        (lambda: stereo.load(42), ConfigError, "name_or_path: an int"),
        (lambda: stereo.load("x", precision="bf61"), ConfigError, "precision bf61: choose"),
        (lambda: stereo.load("x", max_disparity=40), ConfigError,
         "max_disparity must be an integer >= 16, a multiple of 16, got 40"),
        (lambda: stereo.load("sgbm", precision="bf16"), ConfigError,
         "precision: not used by model sgbm"),
        (lambda: stereo.load("sgbm", max_disparity=0), ConfigError,
         "max_disparity must be an integer >= 1, got 0"),
        (lambda: stereo.load(tmp_path / "m.onnx"), ConfigError, "name_or_path"),
    ]
    for call, kind, start in cases:
        with pytest.raises(kind) as caught:
            call()
        assert one_line(caught.value).startswith(start), str(caught.value)


# ------------------------------------------------------------------ the Disparity result


def test_disparity_result_is_the_map_and_displays_itself(tiny):
    left, right = textured_pair(64, 128)
    result = tiny.predict(left, right, lr_check=True)
    array = np.asarray(result)
    assert array.shape == (64, 128) and array.dtype == np.float32
    assert np.asarray(result, dtype=np.float64).dtype == np.float64
    assert result.confidence.shape == (64, 128) and result.consistent.dtype == bool
    assert result.max_disparity == 32
    assert repr(result).startswith("Disparity(pair: 128x64, ") and " px" in repr(result)
    png = result._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    picture = result.show(gt=np.full((64, 128), 4.0, np.float32), confidence=True)
    assert picture._repr_png_()[:4] == b"\x89PNG"
    assert "StereoModel(tiny: psmnet stackhourglass, range 32 px" in repr(tiny)
    assert "<table>" in tiny._repr_html_()


def test_score_depth_and_point_cloud(tiny, tmp_path):
    left, right = textured_pair(64, 128)
    result = tiny.predict(left, right)
    own = np.asarray(result).copy()
    exact = result.score(own)
    assert exact.epe == pytest.approx(0.0, abs=1e-6) and exact.pixels == int((own > 0).sum())
    assert repr(exact).startswith("Scores(EPE 0.000 px, D1 0.00%")
    write_pfm(tmp_path / "gt.pfm", np.full((64, 128), 4.0, np.float32))
    from_file = result.score(tmp_path / "gt.pfm")
    assert from_file.epe == pytest.approx(np.abs(own - 4.0).mean(), rel=1e-5)
    for empty in (np.zeros((64, 128), np.float32), np.full((64, 128), np.nan, np.float32)):
        with pytest.raises(DataError) as caught:
            result.score(empty)
        assert one_line(caught.value).startswith("gt: no pixel with ground truth")
    with pytest.raises(DataError, match="^gt: 64x32 differs"):
        result.score(np.ones((32, 64), np.float32))
    depth = result.depth((700.0, 0.5))
    produced = own > 0
    assert np.allclose(depth[produced], 700.0 * 0.5 / own[produced], rtol=1e-5)
    cloud = result.point_cloud((700.0, 0.5), max_depth=1e9)
    assert len(cloud) == int(produced.sum()) and cloud.rgb.dtype == np.uint8
    assert cloud.save(tmp_path / "cloud.ply").read_bytes().startswith(b"ply\n")
    with pytest.raises(DataError, match="^calibration .*calib.txt: no such file"):
        result.depth(tmp_path / "calib.txt")
    with pytest.raises(ConfigError, match="^calibration: a float"):
        result.depth(700.0)
    with pytest.raises(ConfigError, match="^calibration: focal length"):
        result.depth((700.0, -1.0))


def test_save_writes_the_command_lines_files_and_spares_the_inputs(tiny_checkpoint, tmp_path,
                                                                   capsys):
    left, right = textured_pair(64, 128)
    Image.fromarray(left).save(tmp_path / "scene.png")
    Image.fromarray(right).save(tmp_path / "scene_disp.png")  # named like an output
    model = stereo.load(tiny_checkpoint)
    result = model.predict(tmp_path / "scene.png", tmp_path / "scene_disp.png")
    before = (tmp_path / "scene_disp.png").read_bytes()
    with pytest.raises(ConfigError) as caught:
        result.save(tmp_path)
    assert one_line(caught.value).startswith(f"folder: writing {tmp_path}/scene_disp.png "
                                             "would overwrite the input")
    assert (tmp_path / "scene_disp.png").read_bytes() == before
    written = result.save(tmp_path / "api", calibration=(700.0, 0.5))
    assert {p.name for p in written.values()} == {
        "scene_disp.png", "scene_disp.pfm", "scene_disp_color.png", "scene_overview.png",
        "scene_confidence.png", "scene_depth.pfm", "scene.ply"}
    assert main(["stereo", "predict", str(tmp_path / "scene.png"),
                 str(tmp_path / "scene_disp.png"), "--checkpoint", str(tiny_checkpoint),
                 "--out", str(tmp_path / "cli")]) == 0
    capsys.readouterr()
    for name in ("scene_disp.pfm", "scene_disp.png"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes()
    assert np.array_equal(read_pfm(tmp_path / "api" / "scene_disp.pfm"), np.asarray(result))
    assert main(["stereo", "predict", str(tmp_path / "scene.png"),
                 str(tmp_path / "scene_disp.png"), "--checkpoint", str(tiny_checkpoint),
                 "--out", str(tmp_path)]) == 1  # the command line refuses it too
    assert "--out" in capsys.readouterr().err and (
        tmp_path / "scene_disp.png").read_bytes() == before


def test_sgbm_is_a_model_too():
    left, right = textured_pair(64, 160, shift=6)
    sgbm = stereo.load("sgbm", max_disparity=32)
    assert repr(sgbm) == "StereoModel(sgbm: OpenCV SGBM, range 32 px, cpu)"
    result = sgbm.predict(left, right)
    assert result.confidence is None and not result.valid.all()
    assert np.median(np.asarray(result)[result.valid]) == pytest.approx(6, abs=0.5)
    with pytest.raises(ConfigError, match="^precision: not used by model sgbm"):
        sgbm.predict(left, right, precision="fp32")
    with pytest.raises(DataError, match="^max_disparity 32: SGBM's range .* wider than"):
        sgbm.predict(left[:, :32], right[:, :32])


# ------------------------------------------------------------------ many pairs




def test_predict_folder_scores_each_pair_and_goes_past_a_bad_one(pair_folders, tiny):
    write_pfm(pair_folders / "disp" / "000001_10.pfm", np.ones((32, 64), np.float32))
    lines = []
    run = stereo.predict_folder(tiny, pair_folders / "left", pair_folders / "right",
                                pair_folders / "out", gt=pair_folders / "disp", log=lines.append)
    assert [row["name"] for row in run] == ["000000_10", "000002_10"] and run.total == 3
    assert not run.ok and run.failures[0][0] == "000001_10" and "differs" in run.failures[0][1]
    assert all("metrics" in row and (pair_folders / "out" / f"{row['stem']}_disp.png").is_file()
               for row in run)
    assert any(line.startswith("[2/3] 000001_10: error:") for line in lines)
    assert "FolderPrediction(2 of 3 pairs" in repr(run) and "failed: 000001_10" in repr(run)
    assert "<table>" in run._repr_html_()
    json.dumps(run.to_dict())


def test_predict_folder_without_overviews(pair_folders):
    """``overview=False`` leaves the figures out (and removes an earlier run's, which would
    no longer match); it changes nothing for a KITTI submission, so it is refused there."""
    sgbm = stereo.load("sgbm", max_disparity=32)
    out = pair_folders / "out"
    stereo.predict_folder(sgbm, pair_folders / "left", pair_folders / "right", out, log=None)
    assert len(list(out.glob("*_overview.png"))) == 3
    run = stereo.predict_folder(sgbm, pair_folders / "left", pair_folders / "right", out,
                                overview=False, log=None)
    assert run.ok and not list(out.glob("*_overview.png"))
    assert all("overview_png" not in row["outputs"] for row in run)
    assert len(list(out.glob("*_disp_color.png"))) == 3
    with pytest.raises(ConfigError, match="^overview: not used with kitti_submission"):
        stereo.predict_folder(sgbm, pair_folders / "left", pair_folders / "right",
                              overview=False, kitti_submission=pair_folders / "s", log=None)


def test_predict_folder_with_sgbm_lists_and_a_kitti_submission(pair_folders):
    lefts = sorted((pair_folders / "left").glob("*.png"))
    rights = [pair_folders / "right" / p.name for p in lefts]
    sgbm = stereo.load("sgbm", max_disparity=32)
    run = stereo.predict_folder(sgbm, lefts, rights,
                                kitti_submission=pair_folders / "submission", log=None)
    assert len(run) == 3 and run.ok and run.archive == pair_folders / "submission.zip"
    with zipfile.ZipFile(run.archive) as archive:
        assert sorted(archive.namelist()) == [f"disp_0/{i:06d}_10.png" for i in range(3)]
    with pytest.raises(ConfigError, match="^gt: not used with kitti_submission"):
        stereo.predict_folder("sgbm", lefts, rights, gt=lefts,
                              kitti_submission=pair_folders / "s2", log=None)
    with pytest.raises(ConfigError, match="^right: 3 left files need as many"):
        stereo.predict_folder("sgbm", lefts, rights[:2], pair_folders / "o", log=None)
    with pytest.raises(DataError, match="none.png: no such file"):
        stereo.predict_folder("sgbm", pair_folders / "none.png", rights[0], pair_folders / "o",
                              log=None)


# ------------------------------------------------------------------ evaluate and report


def test_evaluate_and_report_on_synthetic_scenes(tiny, tmp_path):
    evaluation = stereo.evaluate(tiny, "synthetic", count=2, synthetic_size=(48, 96),
                                 compare_sgbm=True, log=None)
    assert set(evaluation.results) == {"synthetic/psmnet", "synthetic/sgbm"}
    assert np.isfinite(evaluation.epe) and evaluation.d1 >= 0
    assert repr(evaluation).splitlines()[0].split()[:3] == ["dataset", "method", "pairs"]
    assert "<table>" in evaluation._repr_html_()
    saved = json.loads(evaluation.save(tmp_path / "eval.json").read_text())
    assert saved["card"]["architecture"] == "psmnet" and saved["precision"] == tiny.precision
    report = stereo.report(tiny, "synthetic", count=2, synthetic_size=(64, 128), log=None)
    assert report.analysis["methods"] == ["psmnet", "sgbm"] and report.findings()
    assert repr(report).startswith("Report(psmnet, sgbm)")
    page = report._repr_html_()
    assert "<table>" in page and "<h1>" in page and "<html" not in page
    written = report.save(tmp_path / "report")
    assert [p.name for p in written] == ["report.html", "report.json"]


def test_evaluate_under_a_protocol_opens_its_split_first(tmp_path):
    data = shared_path("KITTI2015").parent
    with pytest.raises(ConfigError) as caught:
        stereo.evaluate("sgbm", protocol="kitti2015-val", data_root=data, log=None)
    assert one_line(caught.value).startswith("split val: no kitti2015 pairs in that split")
    with pytest.raises(ConfigError, match="^protocol 'nope': unknown"):
        stereo.evaluate("sgbm", protocol="nope", log=None)
    with pytest.raises(ConfigError, match="^data_root is required for kitti2015"):
        stereo.evaluate("sgbm", "kitti2015", log=None)
    with pytest.raises(ConfigError, match="^protocol kitti2015-val and dataset"):
        stereo.evaluate("sgbm", "kitti2015", protocol="kitti2015-val", log=None)


# ------------------------------------------------------------------ the face itself


def test_the_face_imports_no_training_code_and_keeps_its_names():
    code = ("import sys\n"
            "import cnnlab.stereo as s\n"
            "training = ('psmnet', 'train', 'StereoRun')  # the training face, used or not\n"
            "names = [getattr(s, n) for n in s.__all__ if n not in training]\n"
            "import cnnlab.stereo.evaluation.evaluate, cnnlab.stereo.evaluation.report\n"
            "import cnnlab.stereo.inference.many_pairs\n"
            "assert callable(s.evaluate) and callable(s.report), (s.evaluate, s.report)\n"
            "print(sorted(m for m in sys.modules if m.startswith('cnnlab') and any(\n"
            "    m.endswith(t) for t in ('.loop', '.optim', '.lab', '.train', '.task',\n"
            "                             '.losses', '.pipeline', '.training', '.run'))))\n"
            "import cnnlab.stereo.training.lab\n"
            "assert callable(s.train) and callable(s.psmnet), s.train\n")
    assert fresh_python(code) == "[]"
    assert {"load", "StereoModel", "Disparity", "predict_folder", "evaluate", "report",
            "Scores", "Evaluation", "Report", "FolderPrediction"} <= set(stereo.__all__)
    assert isinstance(ConfigError("x", parameter="left"), CnnlabError)
