"""Each stereo option rule is checked once, in the library function or config that owns it:
the Python API and the command line get the same rule and the same one-line error (its
parameters named as flags on the command line), and a bad combination is refused before any
file is read or any model loaded (the files and weights named here do not exist)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.helpers import fresh_python

import cnnlab.stereo as stereo
from cnnlab.cli import build_parser, flag_names, main
from cnnlab.errors import ConfigError
from cnnlab.stereo.api import ModelSpec
from cnnlab.stereo.choices import check_max_disparity
from cnnlab.stereo.inference.export import export_model

REPO = Path(__file__).resolve().parents[1]


def test_the_disparity_range_rule_is_one_for_every_way_in(tmp_path, capsys):
    from cnnlab.stereo.models import PSMNetConfig

    assert check_max_disparity(None) is None and check_max_disparity(np.int64(32)) == 32
    assert check_max_disparity(40, sgbm=True) == 40  # SGBM rounds up to 16 itself
    rule = "an integer >= 16, a multiple of 16"
    for value in (40, 0, True, 32.0):
        with pytest.raises(ConfigError, match=f"^max_disparity must be {rule}, got "
                                              f"{value!r}$"):
            check_max_disparity(value)
    with pytest.raises(ConfigError, match="^max_disparity must be an integer >= 1, got 0"):
        ModelSpec("sgbm", max_disparity=0)
    with pytest.raises(ConfigError, match=f"^max_disparity must be {rule}, got 40"):
        ModelSpec("psmnet-kitti2015", max_disparity=40)
    with pytest.raises(ConfigError, match=f"^max_disparity must be {rule}, got 40"):
        PSMNetConfig(max_disparity=40)
    with pytest.raises(SystemExit):  # where it is parsed, in the rule's words
        main(["stereo", "train", "--max-disparity", "40"])
    assert f"expected {rule}, got '40'" in capsys.readouterr().err
    assert main(["stereo", "predict", str(tmp_path / "l.png"), str(tmp_path / "r.png"),
                 "--weights", "psmnet-kitti2015", "--max-disparity", "40"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"cnnlab: error: --max-disparity must be {rule}, got 40")


@pytest.mark.parametrize("options, message", [
    ({"name_or_path": "psmnet-kitti2015", "runtime": "onnxruntime", "max_disparity": 96},
     "max_disparity: an exported graph searches the range it was exported with; use runtime "
     "torch to change it"),
    ({"name_or_path": "m.onnx", "tile": (64, 64)}, "tile 64x64: an exported graph runs whole"),
    ({"name_or_path": "m.onnx", "device": "cuda"},
     "device cuda: runtime onnxruntime runs on the CPU here"),
    ({"name_or_path": "m.onnx", "precision": "bf16"}, "precision bf16: runtime onnxruntime runs"),
    ({"name_or_path": "m.onnx", "runtime": "torch"},
     "name_or_path m.onnx: an exported graph; run it with runtime onnxruntime"),
    ({"name_or_path": "run", "runtime": "openvino"},
     "runtime openvino: give the exported model as name_or_path FILE.onnx"),
    ({"name_or_path": "sgbm", "tile": (64, 64)}, "tile: not used by model sgbm"),
    ({"name_or_path": "sgbm", "runtime": "openvino"}, "runtime: not used by model sgbm"),
])
def test_a_model_spec_refuses_combinations_before_anything_loads(options, message):
    with pytest.raises(ConfigError) as caught:
        ModelSpec(**options)
    assert str(caught.value).startswith(message) and "--" not in str(caught.value)


@pytest.mark.parametrize("model, options, message", [
    ("sgbm", {"filter": True}, "filter: SGBM already leaves out"),
    ("sgbm", {"lr_check": True, "kitti_submission": "s"},
     "lr_check: not used with kitti_submission"),
    (ModelSpec("m.onnx"), {"filter": True}, "filter: an exported graph gives no confidence map"),
    ("sgbm", {"min_depth": 2.0}, "min_depth needs calibration"),
    ("sgbm", {"min_depth": 2.0, "calibration": (700.0, 0.5), "kitti_submission": "s"},
     "calibration: not used with kitti_submission"),
])
def test_predict_folder_refuses_combinations_before_reading(model, options, message, tmp_path):
    with pytest.raises(ConfigError, match=f"^{message}"):
        stereo.predict_folder(model, tmp_path / "none_l.png", tmp_path / "none_r.png",
                              tmp_path / "out", log=None, **options)
    assert not (tmp_path / "out").exists()


def test_the_nearest_depth_says_which_range_it_needs(tmp_path):
    rng = np.random.default_rng(0)
    left = rng.integers(0, 255, (64, 160, 3), dtype=np.uint8)
    Image.fromarray(left).save(tmp_path / "l.png")
    Image.fromarray(np.roll(left, -6, axis=1)).save(tmp_path / "r.png")
    notes = []
    stereo.predict_folder(stereo.load("sgbm", max_disparity=32), tmp_path / "l.png",
                          tmp_path / "r.png", tmp_path / "out", calibration=(700.0, 0.5),
                          min_depth=5.0, log=None, note=notes.append)
    assert notes[0].startswith("warning: a point 5 m away has a disparity of 70.0 px")


def test_evaluate_and_report_refuse_before_any_pair_is_scored(tmp_path):
    cases = [
        (lambda: stereo.evaluate("sgbm", log=None), "dataset or protocol is required"),
        (lambda: stereo.evaluate("sgbm", "synthetic", json=tmp_path, log=None),
         f"json {tmp_path}: a folder"),
        (lambda: stereo.evaluate("sgbm", "synthetic", folder={"left": "x/*.png"}, log=None),
         "left: for dataset folder only"),
        (lambda: stereo.evaluate("sgbm", "synthetic", max_disparity=0, log=None),
         "max_disparity must be an integer >= 1, got 0"),
        (lambda: stereo.report("sgbm", "synthetic", out=tmp_path / "r.md", log=None),
         f"out {tmp_path / 'r.md'}: a .md name for a html report"),
    ]
    for call, message in cases:
        with pytest.raises(ConfigError, match=f"^{message}"):
            call()


def test_report_writes_its_files_when_given_out(tmp_path):
    result = stereo.report("sgbm", "synthetic", count=1, synthetic_size=(64, 160),
                           max_disparity=32, out=tmp_path / "r", format="markdown", log=None)
    names = [p.name for p in result.files]
    assert names[0] == "r.md" and names[-1] == "r.json" and len(names) > 2  # and its PNGs
    assert all(p.is_file() for p in result.files)


def test_export_checks_its_file_and_sizes_before_loading(tmp_path):
    for out, sizes, message in [(tmp_path / "m.onx", {}, "out .*m.onx: the exported file"),
                                (tmp_path / "m.onnx", {"min_size": (250, 512)},
                                 "min_size/max_size: the height range 250-1008")]:
        with pytest.raises(ConfigError, match=f"^{message}"):
            export_model("no-such-weights", out, **sizes)


def test_training_recipes_refuse_what_they_would_ignore():
    from cnnlab.stereo.training.lab import StereoConfig, check_sweep_recipe
    from cnnlab.stereo.training.presets import check_preset

    with pytest.raises(ConfigError, match="^pair_list: for dataset folder only"):
        StereoConfig(dataset="kitti2015", pair_list="pairs.txt")
    assert StereoConfig(dataset="folder", pair_list="pairs.txt").pair_list == "pairs.txt"
    with pytest.raises(ConfigError, match="^preset and init: the preset sets an architecture"):
        check_preset("cpu-small", "psmnet-kitti2015")
    check_preset("cpu-small", None)
    with pytest.raises(ConfigError, match="^dataset sceneflow: its validation pairs are"):
        check_sweep_recipe(StereoConfig(dataset="sceneflow"))
    with pytest.raises(ConfigError, match="give val_count > 0"):
        check_sweep_recipe(StereoConfig(dataset="folder", pair_list="pairs.txt"))
    check_sweep_recipe(StereoConfig())


def test_the_command_line_words_parameters_as_its_flags(capsys):
    from cnnlab.cli.common import say

    names = flag_names(build_parser())
    assert (names["scale"], names["name_or_path"], names["pair_list"], names["calibration"]) == (
        "--scale/--fast", "--checkpoint", "--list", "--calib")
    say("note: `split` all is not `protocol` kitti2015-val's split; `nothing` else")
    assert capsys.readouterr().err == ("note: --split all is not --protocol kitti2015-val's "
                                       "split; nothing else\n")


def test_the_command_line_and_the_stereo_choices_import_no_torch():
    code = ("import sys\n"
            "import cnnlab.cli, cnnlab.stereo.choices, cnnlab.stereo.training.presets\n"
            "import cnnlab.stereo.evaluation.protocols\n"
            "print('torch' in sys.modules)\n")
    assert fresh_python(code) == "False"
