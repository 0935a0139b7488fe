"""Degenerate data, plainly wrong inputs and metadata trusted for safety (issue 20, classes 4, 5
and 8): refused in one line naming the file or parameter, or warned about, the same through
the command line and the Python API. Table-driven: add a row.

Command-line rows: (id, argv, exit code, fragment of stderr). In argv, {pair} is a folder with
a small rectified pair (left.png, right.png, and more views), {bad} a folder of degenerate
files, {stereo} a tiny stereo checkpoint. API rows: (id, call, fragment); each call takes
the same places.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import shared_path
from tests.test_cli_errors import _run, places  # noqa: F401  (a fixture)

from cnnlab.errors import CnnlabError

SGBM = ["--model", "sgbm", "--max-disparity", "16"]


def _pfm_with_scale(path: Path, scale: bytes, value: float = 5.0) -> None:
    from cnnlab.stereo.data.io import write_pfm

    write_pfm(path, np.full((40, 64), value, np.float32))
    magic, size, _, body = path.read_bytes().split(b"\n", 3)
    path.write_bytes(magic + b"\n" + size + b"\n" + scale + b"\n" + body)


@pytest.fixture(scope="module")
def bad(places):  # noqa: F811
    """Degenerate files beside the tiny pair of ``places``."""
    from cnnlab.classify import load as load_classifier
    from cnnlab.engine.checkpoint import load_checkpoint, save_checkpoint
    from cnnlab.stereo.data.io import write_pfm
    from cnnlab.stereo.models import PSMNet, PSMNetConfig
    from cnnlab.stereo.weights.card import psmnet_card

    root = Path(places["tmp"]) / "bad"
    root.mkdir(exist_ok=True)
    pair = Path(places["pair"])
    write_pfm(root / "zero.pfm", np.zeros((40, 64), np.float32))  # no valid pixel
    write_pfm(root / "inf.pfm", np.full((40, 64), np.inf, np.float32))  # none either
    write_pfm(root / "five.pfm", np.full((40, 64), 3.0, np.float32))
    for name, scale in (("scale0", b"0.0"), ("scalenan", b"nan"), ("scaleinf", b"-inf")):
        _pfm_with_scale(root / f"{name}.pfm", scale)
    np.save(root / "zero.npy", np.zeros((40, 64), np.float32))
    left = np.asarray(Image.open(pair / "left.png"))
    Image.fromarray(np.full_like(left, 128)).save(root / "grey.png")  # one value everywhere
    Image.fromarray(np.full_like(left, 7)).save(root / "grey7.png")
    Image.fromarray(left[:1, :1]).save(root / "one.png")  # a 1x1 image
    folder = root / "folder"
    for sub in ("L", "R", "G"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(left).save(folder / "L" / "a.png")
    Image.open(pair / "right.png").save(folder / "R" / "a.png")
    write_pfm(folder / "G" / "a.pfm", np.zeros((40, 64), np.float32))
    config = PSMNetConfig(max_disparity=16, blocks=(1, 1, 1, 1))
    state = PSMNet(config).state_dict()
    state["features.stem.0.conv.weight"] = torch.full_like(
        state["features.stem.0.conv.weight"], float("nan"))
    save_checkpoint(root / "nan_stereo.safetensors", state,
                    {"card": psmnet_card(config).to_dict()})
    shipped = load_checkpoint(Path(load_classifier("mlp-mnist").card.source["file"]))
    weights = dict(shipped["model"])
    first = next(k for k, v in weights.items() if v.is_floating_point())
    weights[first] = weights[first].float().clone()
    weights[first].view(-1)[0] = float("nan")
    save_checkpoint(root / "nan_classify.safetensors", weights, shipped["metadata"])
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    Image.fromarray(digit).save(root / "digit.png")
    return {**places, "bad": str(root)}


PREDICT = ["stereo", "predict", "{pair}/left.png", "{pair}/right.png", *SGBM, "--out",
           "{tmp}/rel_out"]

REFUSED = [  # exit 1, one line
    ("gt with no valid pixel (zeros)", [*PREDICT, "--gt", "{bad}/zero.pfm"],
     "zero.pfm: ground truth with no valid pixel"),
    ("gt with no valid pixel (inf)", [*PREDICT, "--gt", "{bad}/inf.pfm"],
     "inf.pfm: ground truth with no valid pixel"),
    ("gt with no valid pixel (npy)", [*PREDICT, "--gt", "{bad}/zero.npy"],
     "zero.npy: ground truth with no valid pixel"),
    ("pfm scale 0", [*PREDICT, "--gt", "{bad}/scale0.pfm"], "scale0.pfm: malformed PFM scale"),
    ("pfm scale nan", [*PREDICT, "--gt", "{bad}/scalenan.pfm"],
     "scalenan.pfm: malformed PFM scale"),
    ("pfm scale inf", [*PREDICT, "--gt", "{bad}/scaleinf.pfm"],
     "scaleinf.pfm: malformed PFM scale"),
    ("eval of a folder whose gt has no valid pixel",
     ["stereo", "eval", *SGBM, "--dataset", "folder", "--left", "{bad}/folder/L/*.png",
      "--right", "{bad}/folder/R/*.png", "--gt", "{bad}/folder/G/*.pfm"],
     "a.pfm: ground truth with no valid pixel"),
    ("stereo checkpoint with NaN weights",
     ["stereo", "predict", "{pair}/left.png", "{pair}/right.png", "--checkpoint",
      "{bad}/nan_stereo.safetensors", "--out", "{tmp}/rel_out"],
     "nan_stereo.safetensors: weight features.stem.0.conv.weight holds"),
    ("a 1-pixel pair: one line, no numpy warnings",
     ["stereo", "predict", "{bad}/one.png", "{bad}/one.png", *SGBM, "--out", "{tmp}/rel_out"],
     "wider than the 1-pixel image"),
    ("classify checkpoint with NaN weights",
     ["classify", "predict", "--checkpoint", "{bad}/nan_classify.safetensors",
      "{bad}/digit.png"], "nan_classify.safetensors: weight"),
]


@pytest.mark.parametrize("argv, fragment", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_in_one_line(argv, fragment, bad, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's would be lines on stderr
        code, err = _run(argv, bad, capsys)
    assert code == 1, err
    assert err.startswith("cnnlab: error:") and fragment in err and len(err.splitlines()) == 1
    assert "unexpected" not in err and "EPE" not in err


WARNED = [  # exit 0, a warning line on stderr (None: no warning at all)
    ("views swapped", ["stereo", "predict", "{pair}/right.png", "{pair}/left.png", *SGBM,
                       "--out", "{tmp}/rel_out"], "the views look swapped"),
    ("same image twice", ["stereo", "predict", "{pair}/left.png", "{pair}/left.png", *SGBM,
                          "--out", "{tmp}/rel_out"], "are the same image"),
    ("a constant view", ["stereo", "predict", "{pair}/left.png", "{bad}/grey.png", *SGBM,
                         "--out", "{tmp}/rel_out"], "same value in every pixel"),
    ("a right pair: no warning", [*PREDICT], None),
    ("two constant views: no false rectification note",
     ["stereo", "predict", "{bad}/grey.png", "{bad}/grey7.png", *SGBM, "--out",
      "{tmp}/rel_out"], "same value in every pixel"),
]


@pytest.mark.parametrize("argv, fragment", [r[1:] for r in WARNED], ids=[r[0] for r in WARNED])
def test_warned_on_one_line(argv, fragment, bad, capsys):
    code, err = _run(argv, bad, capsys)
    assert code == 0, err
    warned = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "rows look shifted" not in err and "RuntimeWarning" not in err, err
    if fragment is None:
        assert not warned, err
    else:
        assert len(warned) == 1 and fragment in warned[0], err


# --- the Python API: the same one-line errors and warnings --------------------------------


def _predict_folder(where, **kwargs):
    from cnnlab.stereo import predict_folder

    return predict_folder("sgbm", f"{where['pair']}/left.png", f"{where['pair']}/right.png",
                          f"{where['tmp']}/rel_api", log=None, **kwargs)


def _sgbm_prediction(where, left="left.png", right="right.png"):
    from cnnlab.stereo import load

    return load("sgbm", max_disparity=16).predict(f"{where['pair']}/{left}",
                                                  f"{where['pair']}/{right}")


def _nan_network_predicts(where):
    from cnnlab.stereo.api import StereoModel
    from cnnlab.stereo.models import PSMNet, PSMNetConfig
    from cnnlab.stereo.weights.card import psmnet_card

    config = PSMNetConfig(max_disparity=16, blocks=(1, 1, 1, 1))
    network = PSMNet(config).eval()
    with torch.no_grad():
        network.features.stem[0].conv.weight.fill_(float("nan"))
    StereoModel(network, psmnet_card(config)).predict(f"{where['pair']}/left.png",
                                                      f"{where['pair']}/right.png")


def _nan_classifier_predicts(where):
    from cnnlab.classify import load

    model = load("mlp-mnist")
    with torch.no_grad():
        next(model.network.parameters()).fill_(float("nan"))
    model.predict(f"{where['bad']}/digit.png")


def _evaluate_folder(where):
    from cnnlab.stereo import evaluate

    root = where["bad"]
    evaluate("sgbm", "folder", max_disparity=16, log=None,
             folder={"left": f"{root}/folder/L/*.png", "right": f"{root}/folder/R/*.png",
                     "gt": f"{root}/folder/G/*.pfm"})


API_REFUSED = [
    ("predict_folder, gt with no valid pixel",
     lambda p: _predict_folder(p, gt=f"{p['bad']}/zero.pfm"), "ground truth with no valid pixel"),
    ("Disparity.score, an all-zero array", lambda p: _sgbm_prediction(p).score(
        np.zeros((40, 64))), "gt: no pixel with ground truth"),
    ("Disparity.save, an all-zero array", lambda p: _sgbm_prediction(p).save(
        f"{p['tmp']}/rel_save", gt=np.zeros((40, 64))), "gt: no pixel with ground truth"),
    ("read_pfm, scale 0", lambda p: __import__("cnnlab.stereo.data.io", fromlist=["x"])
     .read_pfm(f"{p['bad']}/scale0.pfm"), "malformed PFM scale"),
    ("evaluate a folder, gt with no valid pixel", _evaluate_folder,
     "a.pfm: ground truth with no valid pixel"),
    ("stereo.load, NaN weights", lambda p: __import__("cnnlab.stereo", fromlist=["x"]).load(
        f"{p['bad']}/nan_stereo.safetensors"), "holds 864 non-finite value(s)"),
    ("classify.load, NaN weights", lambda p: __import__("cnnlab.classify", fromlist=["x"]).load(
        f"{p['bad']}/nan_classify.safetensors"), "holds 1 non-finite value(s)"),
    ("a PSMNet in memory with NaN weights", _nan_network_predicts,
     "disparity is NaN or infinite on every pixel"),
    ("a classifier in memory with NaN weights", _nan_classifier_predicts,
     "model: its output for 1 of 1 image(s)"),
    ("Disparity.score, a KITTI PNG's raw values", lambda p: _sgbm_prediction(p).score(
        np.full((40, 64), 12.5 * 256)), "gt: values up to 3200 px, more than the image is wide"),
    ("Disparity.score, a format for an array", lambda p: _sgbm_prediction(p).score(
        np.full((40, 64), 2.0), gt_format="pfm"), "gt_format: only for a ground-truth file"),
    ("floats without value_range", lambda p: __import__("cnnlab.stereo", fromlist=["x"]).load(
        "sgbm").predict(np.zeros((40, 64, 3), np.float32), np.zeros((40, 64, 3), np.float32)),
     "value_range"),
]


@pytest.mark.parametrize("call, fragment", [r[1:] for r in API_REFUSED],
                         ids=[r[0] for r in API_REFUSED])
def test_api_refuses_in_one_line(call, fragment, bad):
    with pytest.raises(CnnlabError) as caught:
        call(bad)
    assert fragment in str(caught.value) and len(str(caught.value).splitlines()) == 1


API_WARNED = [
    ("swapped", ("right.png", "left.png"), "the views look swapped"),
    ("same image", ("left.png", "left.png"), "are the same image"),
    ("right order", ("left.png", "right.png"), None),
]


@pytest.mark.parametrize("views, fragment", [r[1:] for r in API_WARNED],
                         ids=[r[0] for r in API_WARNED])
def test_api_warns(views, fragment, bad):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _sgbm_prediction(bad, *views)
    said = [str(w.message) for w in caught if "view" in str(w.message)
            or "same image" in str(w.message)]
    if fragment is None:
        assert not said and not result.warnings
    else:
        assert len(said) == 1 and fragment in said[0]
        assert fragment in result.warnings[0]  # and kept with the result


def test_floats_in_0_1_are_scored_as_such_with_value_range(bad):
    from cnnlab.stereo import load

    pair = Path(bad["pair"])
    left, right = (np.asarray(Image.open(pair / n)) for n in ("left.png", "right.png"))
    model = load("sgbm", max_disparity=16)
    as_bytes = np.asarray(model.predict(left, right))
    as_floats = np.asarray(model.predict(left / 255.0, right / 255.0, value_range=(0, 1)))
    assert np.array_equal(as_bytes, as_floats)


# --- class 4: degenerate data in outputs and scores -----------------------------------------


def test_pfm_output_marks_holes_as_infinity_and_reads_back_as_ground_truth(bad, tmp_path):
    """SGBM's holes were written as 0 in its PFM: scored as ground truth they counted as
    disparity 0. Now they are +inf (Middlebury's "no value"), which every GT reader skips."""
    from cnnlab.stereo.data.folder import read_ground_truth
    from cnnlab.stereo.data.io import read_pfm

    result = _sgbm_prediction(bad)
    assert not result.valid.all()  # SGBM leaves holes
    files = result.save(tmp_path)
    stored = read_pfm(files["disparity_pfm"])
    assert np.isinf(stored[~result.valid]).all()
    assert np.array_equal(stored[result.valid], result.disparity[result.valid])
    values, valid = read_ground_truth(files["disparity_pfm"])
    assert np.array_equal(valid, result.valid & (result.disparity > 0))
    assert (values[~valid] == 0).all()


def test_a_pair_with_no_pixel_to_score_is_not_scored_as_perfect():
    """An all-occluded region or an empty mask gives no rates (they would read 0 = perfect),
    and a table of nothing says so rather than failing with KeyError 'all'."""
    from cnnlab.stereo.data.datasets import StereoSample
    from cnnlab.stereo.evaluation.evaluate import evaluate_samples, format_table

    left = np.zeros((8, 16, 3), np.uint8)
    empty = StereoSample("empty", left, left, np.zeros((8, 16), np.float32),
                         np.zeros((8, 16), bool))
    lines = []
    result = evaluate_samples(lambda s: (np.full((8, 16), 2.0, np.float32),
                                         np.ones((8, 16), bool)), [empty], lines.append)
    assert result["aggregate"] == {} and result["per_image"][0]["all"] == {"pixels": 0}
    assert "no pixel with ground truth to score" in lines[0] and "EPE" not in lines[0]
    assert "no pixel with ground truth to score" in format_table({"mine/sgbm": result})


def test_rgba_ink_on_a_transparent_canvas_is_read_on_white(bad):
    from cnnlab.classify.inputs import image_batch

    ink = np.zeros((28, 28, 4), np.uint8)
    ink[4:24, 12:16, 3] = 255  # opaque black ink, transparent elsewhere
    on_white = np.full((28, 28, 3), 255, np.uint8)
    on_white[4:24, 12:16] = 0
    a, _ = image_batch([ink], 1, 28, True)
    b, _ = image_batch([on_white], 1, 28, True)
    assert torch.equal(a, b) and a.float().std() > 0


# --- class 5: the order check on real pairs ---------------------------------------------------


REAL_PAIRS = [
    ("KITTI2015/training/image_2/000000_10.png", "KITTI2015/training/image_3/000000_10.png"),
    ("KITTI2015/training/image_2/000046_10.png", "KITTI2015/training/image_3/000046_10.png"),
    ("KITTI2012/training/colored_0/000001_10.png", "KITTI2012/training/colored_1/000001_10.png"),
    ("Middlebury/tsukuba/im3.png", "Middlebury/tsukuba/im4.png"),
    ("Middlebury/cones/im2.png", "Middlebury/cones/im6.png"),
]


@pytest.mark.parametrize("left, right", REAL_PAIRS, ids=[p[0].split("/")[0] + "/" +
                                                        Path(p[0]).stem for p in REAL_PAIRS])
def test_the_order_check_on_real_pairs(left, right):
    """Right order: no warning; swapped: 'swapped'; the same view twice: 'the same image',
    and a re-encoded copy of it: 'no horizontal shift'."""
    import io

    from cnnlab.stereo.data.io import read_image
    from cnnlab.stereo.inference.predict import pair_warnings

    one, other = read_image(shared_path(left)), read_image(shared_path(right))
    assert pair_warnings(one, other, "left", "right") == []
    assert "look swapped" in pair_warnings(other, one, "left", "right")[0]
    assert "are the same image" in pair_warnings(one, one.copy(), "left", "right")[0]
    buffer = io.BytesIO()
    Image.fromarray(one).save(buffer, "JPEG", quality=90)
    copy = np.asarray(Image.open(buffer).convert("RGB"))
    assert "no horizontal shift" in pair_warnings(one, copy, "left", "right")[0]


@pytest.mark.parametrize("seed", range(4))
def test_the_order_check_on_synthetic_scenes(seed):
    from cnnlab.stereo.data.synthetic import render_pair
    from cnnlab.stereo.inference.predict import pair_warnings

    scene = render_pair(128, 256, 48, seed)
    left, right = ((view.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                   for view in (scene.left, scene.right))
    assert pair_warnings(left, right, "l", "r") == []
    assert "look swapped" in pair_warnings(right, left, "l", "r")[0]


# --- class 8: the exported graph's size range, checked against the graph ---------------------


def _graph_with_pools(path: Path, kernel: int, claimed_min: list[int]) -> Path:
    """A stand-in exported file: left/right in, an SPP-like average pool of kernel ``kernel``
    on the (quarter-size stand-in) difference, the cnnlab metadata with ``claimed_min``."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from cnnlab.stereo.models import PSMNetConfig
    from cnnlab.stereo.weights.card import psmnet_card

    views = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, "h", "w"])
             for n in ("left", "right")]
    out = helper.make_tensor_value_info("disparity", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Sub", ["left", "right"], ["d"]),
             helper.make_node("AveragePool", ["d"], ["disparity"],
                              kernel_shape=[kernel, kernel], strides=[kernel, kernel])]
    model = helper.make_model(helper.make_graph(nodes, "g", views, [out]),
                              opset_imports=[helper.make_opsetid("", 17)])
    for key, value in (("cnnlab_card", json.dumps(psmnet_card(PSMNetConfig()).to_dict())),
                       ("cnnlab_sizes", json.dumps({"min": claimed_min, "max": [1008, 2048]}))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


GRAPH_ROWS = [  # (id, pool kernel, metadata's min, effective min, fragment of the warning)
    ("metadata as exported", 64, [256, 512], (256, 512), None),
    ("metadata edited below the pools", 64, [128, 256], (256, 256), "metadata claims pairs from"),
    ("metadata edited, small pools", 8, [64, 64], (64, 64), None),
]


@pytest.mark.parametrize("kernel, claimed, effective, fragment", [r[1:] for r in GRAPH_ROWS],
                         ids=[r[0] for r in GRAPH_ROWS])
def test_the_smallest_size_is_checked_against_the_graph(kernel, claimed, effective, fragment,
                                                        tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnlab.stereo import load

    path = _graph_with_pools(tmp_path / "g.onnx", kernel, claimed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load(path)
    said = [str(w.message) for w in caught if "metadata" in str(w.message)]
    assert model.network.min_size == effective
    if fragment is None:
        assert not said
    else:
        assert len(said) == 1 and fragment in said[0]
        with pytest.raises(CnnlabError, match="exported for pairs of 256x256"):
            model.network.padded_size(192, 256)  # ran before, off by 0.67 px on average


def test_a_graph_that_cannot_be_checked_says_so(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from cnnlab.stereo import load
    from cnnlab.stereo.inference import runtime

    path = _graph_with_pools(tmp_path / "g.onnx", 64, [256, 512])
    monkeypatch.setattr(runtime, "onnx_pool_kernels", lambda path: None)  # no onnx package
    with pytest.warns(UserWarning, match="not verified against the graph"):
        model = load(path)  # Python: a warning
    assert model.network.min_size == (256, 512)
    from cnnlab.stereo.api import ModelSpec

    notes = []
    ModelSpec(path, note=notes.append).load()  # the command line: one note, on stderr
    assert len(notes) == 1 and "not verified against the graph" in notes[0]
