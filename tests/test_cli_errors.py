"""Bad input through the command line: one line `cnnlab: error: <option or file>: <problem>`,
a non-zero exit, and nothing written (or earlier results intact). Table-driven: add a row.

Each row: (id, argv, exit code, fragment of the error line). In argv, {data} is a tiny MNIST
root, {stereo} a tiny stereo checkpoint, {pair} a folder with a small rectified pair,
{tmp} a scratch folder.
"""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import make_tiny_mnist

from cnnlab.cli import main

TRAIN = ["classify", "train", "--dataset", "mnist", "--data-root", "{data}", "--model", "mlp",
         "--epochs", "1", "--no-progress", "--out", "{tmp}/run"]
PREDICT = ["stereo", "predict", "{pair}/left.png", "{pair}/right.png", "--checkpoint",
           "{stereo}", "--out", "{tmp}/out"]

PARSE_ERRORS = [  # refused where they are parsed: exit 2
    ("model unknown", [*TRAIN, "--model", "nope"], "argument --model: invalid choice: 'nope'"),
    ("crop not HxW", ["stereo", "train", "--crop", "big"], "expected HxW"),
    ("maxdisp alias checked too", ["stereo", "train", "--maxdisp", "40"], "got '40'"),
    ("grad-clip negative", [*TRAIN, "--grad-clip", "-1"], "argument --grad-clip"),
    ("grad-clip zero", [*TRAIN, "--grad-clip", "0"], "argument --grad-clip"),
    ("stop-after negative", [*TRAIN, "--stop-after", "-1"], "argument --stop-after"),
    ("stop-after zero", [*TRAIN, "--stop-after", "0"], "argument --stop-after"),
    ("translate negative", [*TRAIN, "--translate", "-3"], "argument --translate"),
    ("image-size zero", [*TRAIN, "--image-size", "0"], "argument --image-size"),
    ("warmup negative", [*TRAIN, "--warmup-epochs", "-1"], "argument --warmup-epochs"),
    ("lr nan", [*TRAIN, "--lr", "nan"], "argument --lr"),
    ("lr inf", [*TRAIN, "--lr", "inf"], "argument --lr"),
    ("lr zero", [*TRAIN, "--lr", "0"], "argument --lr"),
    ("label smoothing 2", [*TRAIN, "--label-smoothing", "2"], "argument --label-smoothing"),
    ("momentum 1", [*TRAIN, "--momentum", "1"], "argument --momentum"),
    ("epochs zero", [*TRAIN, "--epochs", "0"], "argument --epochs"),
    ("batch text", [*TRAIN, "--batch-size", "big"], "argument --batch-size"),
    ("milestone zero", [*TRAIN, "--milestones", "0"], "argument --milestones"),
    ("top-k zero", ["classify", "predict", "--weights", "mlp-mnist", "x.png", "--top-k", "0"],
     "argument --top-k"),
    ("top-k negative", ["classify", "predict", "--weights", "mlp-mnist", "x.png", "--top-k",
                        "-1"], "argument --top-k"),
    ("split bogus", ["stereo", "eval", "--model", "sgbm", "--dataset", "synthetic", "--split",
                     "bogus"], "argument --split"),
    ("sgbm range zero", ["stereo", "eval", "--model", "sgbm", "--dataset", "synthetic",
                         "--max-disparity", "0"], "argument --max-disparity"),
    ("sgbm range negative", ["stereo", "eval", "--model", "sgbm", "--dataset", "synthetic",
                             "--max-disparity", "-16"], "argument --max-disparity"),
    ("max-disparity not /16", ["stereo", "train", "--max-disparity", "50"],
     "argument --max-disparity"),
    ("eval count zero", ["stereo", "eval", "--model", "sgbm", "--dataset", "synthetic",
                         "--count", "0"], "argument --count"),
    ("focal zero", [*PREDICT, "--focal", "0", "--baseline", "0.5"], "argument --focal"),
    ("baseline nan", [*PREDICT, "--focal", "700", "--baseline", "nan"], "argument --baseline"),
    ("crop zero", ["stereo", "train", "--crop", "0x64"], "argument --crop"),
    ("scale zero", [*PREDICT, "--scale", "0"], "argument --scale"),
    ("scale above one", [*PREDICT, "--scale", "1.5"], "argument --scale"),
    ("scale and fast", [*PREDICT, "--scale", "0.5", "--fast"], "not allowed with argument"),
    ("precision unknown", [*PREDICT, "--precision", "fp8"], "argument --precision"),
    ("runtime unknown", [*PREDICT, "--runtime", "tensorrt"], "argument --runtime"),
    ("workers negative", ["stereo", "train", "--workers", "-1"], "argument --workers"),
]

RUN_ERRORS = [  # refused before work: exit 1
    ("lesson unknown", ["basics", "run", "nope"], "name 'nope': not a lesson; choose from"),
    ("data missing", ["classify", "train", "--dataset", "mnist", "--data-root", "{tmp}/empty",
                      "--out", "{tmp}/r1"], "missing train-images-idx3-ubyte.gz"),
    ("hflip on digits", [*TRAIN, "--hflip"], "horizontal flips"),
    ("model option without =", [*TRAIN, "--model-arg", "width"], "KEY=VALUE"),
    ("eval of no run", ["classify", "eval", "--checkpoint", "{tmp}/none"],
     "no such run directory"),
    ("predict with a non-checkpoint", ["classify", "predict", "--checkpoint", "{tmp}/a_file",
                                       "{tmp}/a_file"], "not a safetensors checkpoint"),
    ("stereo eval without weights", ["stereo", "eval", "--dataset", "kitti2015"],
     "--checkpoint or --weights is required"),
    ("model option not a number", [*TRAIN, "--model", "resnet18", "--model-arg", "width=abc"],
     "model resnet18"),
    ("model option unknown", [*TRAIN, "--model-arg", "depth=3"], "has no option depth"),
    ("device unknown", [*TRAIN, "--device", "tpu"], "--device tpu"),
    pytest.param("device not present", [*TRAIN, "--device", "mps"], "--device mps",
                 marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="has MPS")),
    pytest.param("device cuda absent", [*TRAIN, "--device", "cuda"], "--device cuda",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA")),
    ("image too small for the model", [*TRAIN, "--model", "lenet5", "--image-size", "4"],
     "--image-size 4"),
    ("out is a file", [*TRAIN[:-1], "{tmp}/a_file"], "a_file"),
    ("resume another lab", ["classify", "train", "--resume", "{tmp}/stereo_run"],
     "a stereo run, not a classify run"),
    ("resume nothing", ["classify", "train", "--resume", "{tmp}"], "not a run directory"),
    ("resume with another world size", ["classify", "train", "--resume", "{tmp}/ddp_run"],
     "trained by 2 process(es), resumed by 1"),
    ("json into a folder", ["stereo", "eval", "--model", "sgbm", "--dataset", "synthetic",
                            "--json", "{tmp}"], "--json"),
    ("config of another lab", ["stereo", "train", "--config", "{tmp}/classify_config.json"],
     "a classify run, not a stereo run"),
    ("config with a typo", ["classify", "train", "--config", "{tmp}/typo_config.json"],
     "unknown setting modle"),
    ("corrupt gz", ["classify", "train", "--dataset", "mnist", "--data-root", "{tmp}/corrupt",
                    "--epochs", "1", "--out", "{tmp}/run2"], "t10k-images-idx3-ubyte.gz"),
    ("predict not an image", ["classify", "predict", "--weights", "mlp-mnist",
                              "{tmp}/a_file"], "not a readable image"),
    ("predict missing image", ["classify", "predict", "--weights", "mlp-mnist",
                               "{tmp}/none.png"], "none.png: no such file"),
    ("image over the pixel limit", ["classify", "predict", "--weights", "mlp-mnist",
                                    "{pair}/big.png"], "over the limit of"),
    ("calibration with focal 0", [*PREDICT, "--calib", "{pair}/calib.txt"],
     "calib.txt: malformed calibration"),
    ("KITTI calibration with focal 0", [*PREDICT, "--calib", "{pair}/kitti_calib.txt"],
     "kitti_calib.txt: malformed calibration (P_rect_02 has a focal length of 0)"),
    ("preset with init", ["stereo", "train", "--preset", "cpu-small", "--init", "{stereo}"],
     "--preset and --init"),
    ("bad ground truth", [*PREDICT, "--gt", "{tmp}/a_file"], "a_file"),
    ("sgbm range wider than the image", ["stereo", "eval", "--model", "sgbm", "--dataset",
                                         "synthetic", "--synthetic-size", "32x64",
                                         "--max-disparity", "64", "--count", "1"],
     "wider than"),
    ("data root a symlink loop", [*TRAIN[:5], "{tmp}/loop", *TRAIN[6:]],
     "--data-root {tmp}/loop: a loop of symbolic links"),
    ("out a symlink loop", [*TRAIN[:-1], "{tmp}/loop"],
     "--out {tmp}/loop: a broken or looping symbolic link"),
    ("image a symlink loop", [*PREDICT[:2], "{tmp}/loop", *PREDICT[3:]],
     "loop: a broken or looping symbolic link"),
    ("truncated image", [*PREDICT[:2], "{tmp}/truncated.png", *PREDICT[3:]],
     "truncated.png: not a readable image (image file is truncated)"),
    ("empty config", ["classify", "train", "--config", "{tmp}/empty.json"],
     "empty.json: not a readable JSON file"),
    ("batch larger than the data", [*TRAIN, "--batch-size", "1000"],
     "--batch-size 1000: the training data gives no full batch"),
    ("images of two sizes", [*PREDICT[:3], "{pair}/flat6_r.png", *PREDICT[4:]],
     "flat6_r.png: size 64x6 differs from left.png (64x40)"),
    ("runtime without an exported file", [*PREDICT, "--runtime", "onnxruntime"],
     "--runtime onnxruntime: give the exported model as --checkpoint FILE.onnx"),
    ("exported file without a runtime", [*PREDICT[:5], "{tmp}/fake.onnx", *PREDICT[6:]],
     "fake.onnx: an exported graph; run it with --runtime onnxruntime"),
    ("exported file missing", [*PREDICT[:5], "{tmp}/none.onnx", *PREDICT[6:], "--runtime",
                               "onnxruntime"], "--checkpoint {tmp}/none.onnx: no such file"),
    ("exported file with a preview", [*PREDICT[:5], "{tmp}/fake.onnx", *PREDICT[6:],
                                      "--runtime", "onnxruntime", "--fast"],
     "--scale/--fast: an exported graph searches the fixed range"),
    ("exported graph on a GPU", [*PREDICT[:5], "{tmp}/fake.onnx", *PREDICT[6:], "--runtime",
                                 "openvino", "--device", "cuda"],
     "--device cuda: --runtime openvino runs on the CPU here"),
    ("onnx runtime in bf16", [*PREDICT[:5], "{tmp}/fake.onnx", *PREDICT[6:], "--runtime",
                              "onnxruntime", "--precision", "bf16"],
     "--precision bf16: --runtime onnxruntime runs the exported graph in fp32 only"),
    pytest.param("exported file not ONNX", [*PREDICT[:5], "{tmp}/fake.onnx", *PREDICT[6:],
                                            "--runtime", "onnxruntime"],
                 "fake.onnx: not a model ONNX Runtime can load",
                 marks=pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                          reason="the 'export' extra is not installed")),
    pytest.param("exported file not ONNX (OpenVINO)", [*PREDICT[:5], "{tmp}/fake.onnx",
                                                       *PREDICT[6:], "--runtime", "openvino"],
                 "fake.onnx: not a model OpenVINO can read",
                 marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                          reason="the 'openvino' extra is not installed")),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    from cnnlab.engine.checkpoint import save_checkpoint
    from cnnlab.stereo.models import PSMNet, PSMNetConfig
    from cnnlab.stereo.weights.card import psmnet_card

    root = tmp_path_factory.mktemp("cli_errors")
    data = make_tiny_mnist(root / "data")
    config = PSMNetConfig(max_disparity=16, blocks=(1, 1, 1, 1))
    stereo = root / "stereo.safetensors"
    save_checkpoint(stereo, PSMNet(config).state_dict(), {"card": psmnet_card(config).to_dict()})
    pair = root / "pair"
    pair.mkdir()
    rng = np.random.default_rng(0)
    left = rng.integers(0, 255, (40, 64, 3), dtype=np.uint8)
    Image.fromarray(left).save(pair / "left.png")
    Image.fromarray(np.roll(left, -3, axis=1)).save(pair / "right.png")
    Image.fromarray(np.zeros((100, 120), np.uint8)).save(pair / "big.png")
    for rows in (2, 6, 12):  # very flat images are valid input (padded to 16 rows)
        Image.fromarray(left[:rows]).save(pair / f"flat{rows}_l.png")
        Image.fromarray(left[:rows]).save(pair / f"flat{rows}_r.png")
    (pair / "calib.txt").write_text("cam0=[0 0 32; 0 0 20; 0 0 1]\nbaseline=100\ndoffs=0\n")
    (pair / "kitti_calib.txt").write_text("P_rect_02: 0 0 600 45 0 700 170 0 0 0 1 0\n"
                                          "P_rect_03: 0 0 600 -330 0 700 170 0 0 0 1 0\n")
    (root / "a_file").write_text("not an image, not a folder")
    (root / "loop").symlink_to(root / "loop2")
    (root / "loop2").symlink_to(root / "loop")
    (root / "truncated.png").write_bytes((pair / "left.png").read_bytes()[:2000])
    (root / "empty.json").write_text("")
    (root / "fake.onnx").write_text("not a graph")
    stereo_run = root / "stereo_run"
    stereo_run.mkdir()
    (stereo_run / "config.json").write_text(json.dumps({"lab": "stereo", "stereo": {},
                                                        "optim": {}}))
    ddp_run = root / "ddp_run"
    ddp_run.mkdir()
    (ddp_run / "config.json").write_text(json.dumps({"lab": "classify", "classify": {},
                                                     "optim": {}, "world_size": 2}))
    (root / "classify_config.json").write_text(json.dumps({"lab": "classify", "classify": {},
                                                           "optim": {}}))
    (root / "typo_config.json").write_text(json.dumps({"lab": "classify",
                                                       "classify": {"modle": "mlp"},
                                                       "optim": {}}))
    corrupt = root / "corrupt" / "MNIST" / "raw"
    corrupt.mkdir(parents=True)
    for name in os.listdir(data / "MNIST" / "raw"):
        payload = (data / "MNIST" / "raw" / name).read_bytes()
        if name.startswith("t10k-images"):  # a valid gzip header, then a broken deflate stream
            payload = payload[:20] + bytes(64) + payload[84:]
        (corrupt / name).write_bytes(payload)
    return {"data": str(data), "stereo": str(stereo), "pair": str(pair), "tmp": str(root)}


def _run(argv, places, capsys):
    argv = [a.format(**places) for a in argv]
    code = main(argv)
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("argv, fragment", [c[1:] for c in PARSE_ERRORS],
                         ids=[c[0] for c in PARSE_ERRORS])
def test_refused_where_parsed(argv, fragment, places, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _run(argv, places, capsys)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert err.startswith("cnnlab: error:") and fragment in err and len(err.splitlines()) == 1


def _params(rows):
    """Table rows (id, argv, fragment), some wrapped in pytest.param for their marks."""
    params = []
    for row in rows:
        values, marks = (row.values, row.marks) if hasattr(row, "values") else (row, ())
        params.append(pytest.param(*values[1:], id=values[0], marks=marks))
    return params


def _files(folder):
    return sorted(str(p) for p in Path(folder).rglob("*"))


@pytest.mark.parametrize("argv, fragment", _params(RUN_ERRORS))
def test_refused_in_one_line(argv, fragment, places, capsys, monkeypatch):
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "10000")  # big.png is over it, the pair is not
    before = _files(places["tmp"])
    code, err = _run(argv, places, capsys)
    fragment = fragment.format(**places)
    assert code == 1, err
    assert err.startswith("cnnlab: error:") and fragment in err and len(err.splitlines()) == 1
    assert "Traceback" not in err and "unexpected" not in err, err
    assert _files(places["tmp"]) == before, "files written by a refused command"


@pytest.mark.parametrize("rows", [2, 6, 12])
def test_very_flat_pairs_are_predicted(rows, places, tmp_path, capsys):
    """Once a traceback (the rectification check compared empty row profiles)."""
    pair = places["pair"]
    code = main(["stereo", "predict", f"{pair}/flat{rows}_l.png", f"{pair}/flat{rows}_r.png",
                 "--checkpoint", places["stereo"], "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / f"flat{rows}_l_disp.png").size == (64, rows)


def test_resume_says_which_flags_it_ignores(places, tmp_path, capsys):
    run = tmp_path / "run"
    train = [a.format(**places) for a in TRAIN[:-1]] + [str(run)]
    assert main(train) == 0
    capsys.readouterr()
    assert main(["classify", "train", "--resume", str(run), "--epochs", "2", "--lr", "0.5",
                 "--model", "lenet5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "note: --lr, --model ignored: a resumed run keeps the settings in" in out
    saved = json.loads((run / "config.json").read_text())
    assert saved["optim"]["lr"] == 0.001 and saved["classify"]["model"] == "mlp"
    assert saved["optim"]["epochs"] == 2


def test_the_output_folder_is_checked_before_the_data(places, capsys):
    """--out naming a file is refused before the data is read: with no data there either,
    the folder is what the error names."""
    assert main(["classify", "train", "--dataset", "mnist", "--data-root",
                 places["tmp"] + "/no_data", "--out", places["tmp"] + "/a_file"]) == 1
    assert "a_file: exists and is not a folder" in capsys.readouterr().err


def test_sgbm_range_is_checked_before_psmnet_runs(places, capsys):
    assert main(["stereo", "eval", "--model", "both", "--checkpoint", places["stereo"],
                 "--dataset", "synthetic", "--synthetic-size", "32x64", "--count", "1",
                 "--max-disparity", "64"]) == 1
    captured = capsys.readouterr()
    assert "wider than the 64-pixel image" in captured.err and "/ psmnet:" not in captured.out


def test_the_pixel_limit_replaces_pillows_own(tmp_path, monkeypatch):
    """$CNNLAB_MAX_PIXELS=0 reads what Pillow alone would refuse as a bomb; its global is
    left as it was."""
    from PIL import Image

    from cnnlab.data.image import read_rgb

    Image.fromarray(np.zeros((60, 60, 3), np.uint8)).save(tmp_path / "wide.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow: a bomb above 2000 pixels
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "0")
    assert read_rgb(tmp_path / "wide.png").shape == (60, 60, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "-5")
    with pytest.raises(Exception, match="CNNLAB_MAX_PIXELS='-5'"):
        read_rgb(tmp_path / "wide.png")


def test_predict_removes_this_pairs_outputs_from_an_earlier_run(places, tmp_path, capsys):
    """An error map or a point cloud left from an earlier run with --gt/--calib would pass for
    this run's; other pairs' files are not touched."""
    pair = places["pair"]
    for name in ("left_error.png", "left.ply", "left_depth.pfm", "other.ply"):
        (tmp_path / name).write_text("from an earlier run")
    assert main(["stereo", "predict", f"{pair}/left.png", f"{pair}/right.png", "--checkpoint",
                 places["stereo"], "--out", str(tmp_path)]) == 0
    assert "Running psmnet in " in capsys.readouterr().err
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["left_confidence.png", "left_disp.pfm", "left_disp.png",
                    "left_disp_color.png", "left_overview.png", "other.ply"]


def test_long_epochs_are_announced_after_a_few_steps():
    from cnnlab.engine.loop import _estimate

    lines = []
    _estimate(lines.append, 57.0, 100, 10)
    assert lines == ["note: 57.0 s per step, so about 95 min per epoch and 15.8 h for the 10 "
                     "epoch(s) of this session, validation not included"]
    _estimate(lines.append, 0.1, 100, 10)  # a 10 s epoch needs no estimate
    assert len(lines) == 1


def test_a_bad_image_is_refused_before_the_model_is_loaded(places, capsys):
    code, err = _run([*PREDICT[:2], "{tmp}/truncated.png", *PREDICT[3:]], places, capsys)
    assert code == 1 and "truncated.png" in err
    assert capsys.readouterr().out == ""  # the model card is printed once a model is loaded


@pytest.mark.parametrize("argv, where, hint", [
    (TRAIN, "cnnlab.engine.lab.train_run", "out of memory at --batch-size 128: lower it ("),
    (["stereo", "train", "--batch-size", "64"], "cnnlab.engine.lab.train_run",
     "out of memory at --batch-size 64: lower it or --crop"),
    (PREDICT, "cnnlab.stereo.inference.predict.predict_views",
     "images are too large for this machine"),
    (["classify", "predict", "--weights", "mlp-mnist", "x.png"],
     "cnnlab.classify.predict.predict_files", "out of memory; try fewer or smaller inputs"),
])
def test_running_out_of_memory_says_what_to_lower(argv, where, hint, places, capsys,
                                                  monkeypatch):
    def exhausted(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 268435456 bytes.")
    monkeypatch.setattr(where, exhausted)
    code, err = _run(argv, places, capsys)
    last = err.splitlines()[-1]  # after the progress line, where a command prints one
    assert code == 1 and last.startswith("cnnlab: error: ") and hint in last, err
    assert sum("error" in line for line in err.splitlines()) == 1 and "unexpected" not in err


def test_read_only_folders_are_refused_and_a_read_only_run_evaluates_elsewhere(
        places, tmp_path, capsys, monkeypatch):
    """Tests run as root here, for whom every folder is writable: the permission check is
    shown a folder it may not write, as another user would see it."""
    from cnnlab.engine import atomic

    run = tmp_path / "shared_run"
    assert main([a.format(**places) for a in TRAIN[:-1]] + [str(run)]) == 0
    capsys.readouterr()
    read_only = {run, tmp_path / "ro"}
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: Path(path) not in read_only)
    before = _files(tmp_path)
    assert main(["classify", "eval", "--checkpoint", str(run), "--data-root",
                 places["data"]]) == 1
    assert capsys.readouterr().err.strip() == (
        f"cnnlab: error: --checkpoint {run}: {run} is not writable for this user; give an "
        "--out folder for eval.json and confusion.png")
    assert main([a.format(**places) for a in TRAIN[:-1]] + [str(tmp_path / "ro" / "run")]) == 1
    assert f"--out {tmp_path}/ro/run: {tmp_path}/ro is not writable" in capsys.readouterr().err
    assert main(["classify", "train", "--resume", str(run), "--epochs", "2"]) == 1
    assert f"--resume {run}: {run} is not writable" in capsys.readouterr().err
    assert _files(tmp_path) == before
    assert main(["classify", "eval", "--checkpoint", str(run), "--data-root", places["data"],
                 "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "eval.json").is_file()
