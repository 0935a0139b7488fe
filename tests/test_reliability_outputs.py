"""Issue 20, classes 2, 3 and 6, as tables: every output checked before the expensive work
(``engine.atomic.check_writable_file``/``check_writable_folder``), every option that would
change nothing refused by the rule its function declares (``engine.options``), and no output
written over an input (``engine.atomic.check_spares_inputs``). Each row runs the command line
and the Python API, asserts the one-line error naming the parameter, that no file changed, and
that the expensive step (loading a model, training, exporting) was never reached."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.test_cli_errors import _run, places  # noqa: F401  (a fixture)

import cnnlab.stereo as stereo
from cnnlab.cli import main
from cnnlab.errors import ConfigError


class Reached(Exception):
    """An expensive step a refused call must never reach."""


@pytest.fixture
def guarded(monkeypatch):
    """Loading a stereo model, training, exporting, and evaluating a classifier all fail."""
    import cnnlab.classify.evaluate as classify_evaluate
    import cnnlab.classify.release as release
    import cnnlab.stereo.inference.export as export
    import cnnlab.stereo.weights.registry as registry
    from cnnlab.stereo.api import ModelSpec

    def reached(*args, **kwargs):
        raise Reached("the expensive step ran")

    monkeypatch.setattr(ModelSpec, "load", reached)
    monkeypatch.setattr(release, "train_run", reached)
    monkeypatch.setattr(export, "export_onnx", reached)
    monkeypatch.setattr(registry, "load_weights", reached)
    monkeypatch.setattr(classify_evaluate, "load_model", reached)


def _scratch(tmp_path: Path, checkpoint: str) -> dict[str, str]:
    from helpers import textured_pair

    from cnnlab.stereo.data.io import write_pfm

    for folder in ("L", "R", "D", "sub/disp_0"):
        (tmp_path / folder).mkdir(parents=True)
    for i, name in enumerate(("000000_10", "000001_10")):
        left, right = textured_pair(64, 128, shift=4, seed=i)
        Image.fromarray(left).save(tmp_path / f"L/{name}.png")
        Image.fromarray(right).save(tmp_path / f"R/{name}.png")
        Image.fromarray(left).save(tmp_path / f"sub/disp_0/{name}.png")
        write_pfm(tmp_path / f"D/{name}.pfm", np.full((64, 128), 4.0, np.float32))
    for view in "LR":  # a pair whose name is another pair's output
        (tmp_path / f"{view}/000000_10_disp.png").write_bytes(
            (tmp_path / f"{view}/000001_10.png").read_bytes())
    (tmp_path / "x.onnx").mkdir()
    (tmp_path / "x.safetensors").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    model = tmp_path / "model.safetensors"
    model.write_bytes(Path(checkpoint).read_bytes())
    (tmp_path / "link.onnx").symlink_to(model)
    (tmp_path / "link.json").symlink_to(model)
    os.link(tmp_path / "L/000000_10.png", tmp_path / "hard.json")
    (tmp_path / "pairs.txt").write_text("L/000000_10.png R/000000_10.png D/000000_10.pfm\n")
    return {"t": str(tmp_path), "ckpt": str(model)}


def _state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file (links not followed) with its size and modification time."""
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


PAIR = ["{t}/L/000000_10.png", "{t}/R/000000_10.png", "--checkpoint", "{ckpt}"]
FOLDER = ["--dataset", "folder", "--left", "{t}/L/0*_10.png", "--right", "{t}/R/*.png",
          "--gt", "{t}/D/*.pfm"]
SYNTH = ["--dataset", "synthetic"]
EVAL = ["stereo", "eval", "--checkpoint", "{ckpt}"]
REPORT = ["stereo", "report", "--checkpoint", "{ckpt}"]

# (id, argv, the one-line error's fragment)
CLI_ROWS = [
    # class 2: outputs checked before the work
    ("c2-export-out-is-a-folder",
     ["stereo", "export", "--checkpoint", "{ckpt}", "--out", "{t}/x.onnx", "--no-check"],
     "--out {t}/x.onnx: a folder; give the name of a file to write"),
    ("c2-export-out-below-a-loop",
     ["stereo", "export", "--checkpoint", "{ckpt}", "--out", "{t}/loop/x.onnx"],
     "--out {t}/loop: a broken or looping symbolic link"),
    ("c2-import-out-is-a-folder",
     ["stereo", "weights", "import", "{ckpt}", "--out", "{t}/x.safetensors"],
     "--out {t}/x.safetensors: a folder; give the name of a file to write"),
    ("c2-build-out-is-a-file",
     ["classify", "weights", "build", "simple_cnn-mnist", "--out", "{t}/a_file", "--run",
      "{t}/run"], "--out {t}/a_file: exists and is not a folder"),
    ("c2-build-run-is-a-file",
     ["classify", "weights", "build", "simple_cnn-mnist", "--out", "{t}/w", "--run",
      "{t}/a_file"], "--run {t}/a_file: exists and is not a folder"),
    ("c2-eval-json-is-a-folder", EVAL + SYNTH + ["--json", "{t}/L"],
     "--json {t}/L: a folder; give the name of a file to write"),
    ("c2-report-out-below-a-file", REPORT + SYNTH + ["--out", "{t}/a_file/r.html"],
     "--out {t}/a_file: exists and is not a folder"),
    # class 3: options that would change nothing
    ("c3-filter-without-calib-or-gt", ["stereo", "predict", *PAIR, "--filter"],
     "--filter needs --calib or --gt or --list"),
    ("c3-min-confidence-without-filter",
     ["stereo", "predict", *PAIR, "--min-confidence", "0.7"],
     "--min-confidence needs --filter"),
    ("c3-gt-scale-without-gt", ["stereo", "predict", *PAIR, "--gt-scale", "8"],
     "--gt-scale needs --gt or --list"),
    ("c3-gt-format-without-gt", ["stereo", "predict", *PAIR, "--gt-format", "pfm"],
     "--gt-format needs --gt or --list"),
    ("c3-out-with-kitti-submission",
     ["stereo", "predict", "{t}/L", "{t}/R", "--checkpoint", "{ckpt}", "--kitti-submission",
      "{t}/ks", "--out", "{t}/o"], "--out: not used with --kitti-submission"),
    ("c3-download-with-a-checkpoint", ["stereo", "predict", *PAIR, "--download"],
     "--download: only for registered weights by name"),
    ("c3-weights-root-with-a-checkpoint", ["stereo", "predict", *PAIR, "--weights-root", "{t}"],
     "--weights-root: only for registered weights by name"),
    ("c3-max-memory-with-fixed-tiles",
     ["stereo", "predict", *PAIR, "--tile", "64x128", "--max-memory", "500"],
     "--max-memory: only for --tile auto or off"),
    ("c3-filter-with-a-list-without-ground-truth",
     ["stereo", "predict", "--list", "{t}/pairs_no_gt.txt", "--checkpoint", "{ckpt}", "--filter",
      "--out", "{t}/o"], "--filter needs --calib or --gt or --list"),
    ("c3-eval-split-with-folder", EVAL + FOLDER + ["--split", "val"],
     "--split: only for the official datasets"),
    ("c3-eval-count-with-folder", EVAL + FOLDER + ["--count", "3"],
     "--count: only for --dataset synthetic"),
    ("c3-eval-synthetic-size-with-folder", EVAL + FOLDER + ["--synthetic-size", "64x128"],
     "--synthetic-size: only for --dataset synthetic"),
    ("c3-eval-max-disparity-psmnet-only", EVAL + FOLDER + ["--max-disparity", "64"],
     "--max-disparity: the range SGBM searches and synthetic scenes span"),
    ("c3-report-split-with-synthetic", REPORT + SYNTH + ["--split", "val", "--out", "{t}/r"],
     "--split: only for the official datasets"),
    ("c3-import-weights-root-with-a-file",
     ["stereo", "weights", "import", "{ckpt}", "--weights-root", "{t}", "--out",
      "{t}/i.safetensors"], "--weights-root: only for registered weights by name"),
    ("c3-classify-eval-which-with-weights",
     ["classify", "eval", "--weights", "simple_cnn-mnist", "--which", "last", "--out", "{t}/e"],
     "--which: picks a run directory's checkpoint"),
    # class 6: outputs over inputs
    ("c6-predict-out-is-the-input-folder",
     ["stereo", "predict", "{t}/L", "{t}/R", "--checkpoint", "{ckpt}", "--out", "{t}/L"],
     "--out: writing {t}/L/000000_10_disp.png would overwrite the input"),
    ("c6-submission-over-its-inputs",
     ["stereo", "predict", "{t}/sub/disp_0", "{t}/R", "--checkpoint", "{ckpt}",
      "--kitti-submission", "{t}/sub"],
     "--kitti-submission: writing {t}/sub/disp_0/000000_10.png would overwrite the input"),
    ("c6-eval-json-links-to-the-checkpoint", EVAL + SYNTH + ["--json", "{t}/link.json"],
     "--json: writing {t}/link.json would overwrite the input {ckpt}, the same file by a link"),
    ("c6-eval-json-hard-link-to-an-image", EVAL + FOLDER + ["--json", "{t}/hard.json"],
     "--json: writing {t}/hard.json would overwrite the input {t}/L/000000_10.png"),
    ("c6-eval-json-is-the-list", EVAL + ["--dataset", "folder", "--list", "{t}/pairs.txt",
                                         "--json", "{t}/pairs.txt"],
     "--json: writing {t}/pairs.txt would overwrite the input"),
    ("c6-report-numbers-over-the-list",
     REPORT + ["--dataset", "folder", "--list", "{t}/r.json", "--out", "{t}/r.html"],
     "--out: writing {t}/r.json would overwrite the input {t}/r.json"),
    ("c6-export-out-links-to-the-checkpoint",
     ["stereo", "export", "--checkpoint", "{ckpt}", "--out", "{t}/link.onnx", "--no-check"],
     "--out: writing {t}/link.onnx would overwrite the input {ckpt}, the same file by a link"),
    ("c6-import-out-is-the-source",
     ["stereo", "weights", "import", "{ckpt}", "--out", "{ckpt}"],
     "--out: writing {ckpt} would overwrite the input {ckpt}"),
]


@pytest.mark.parametrize("argv, fragment", [r[1:] for r in CLI_ROWS], ids=[r[0] for r in CLI_ROWS])
def test_cli_refuses_before_work(argv, fragment, places, tmp_path, capsys, guarded):  # noqa: F811
    names = _scratch(tmp_path, places["stereo"])
    (tmp_path / "pairs_no_gt.txt").write_text("L/000000_10.png R/000000_10.png\n")
    (tmp_path / "r.json").write_text((tmp_path / "pairs.txt").read_text())  # a list file
    before = _state(tmp_path)
    code = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert err.startswith("cnnlab: error: ") and len(err.splitlines()) == 1, err
    assert fragment.format(**names) in err
    assert _state(tmp_path) == before, "a refused command changed files"


# the same refusals from Python: (id, call(t, ckpt), the message's start)
def _api_rows():
    from cnnlab.classify.evaluate import evaluate_classifier
    from cnnlab.classify.release import build_weights
    from cnnlab.stereo.inference.export import export_model
    from cnnlab.stereo.weights.registry import import_checkpoint

    pair = ("{t}/L/000000_10.png", "{t}/R/000000_10.png")
    folder = {"left": "{t}/L/0*_10.png", "right": "{t}/R/*.png", "gt": "{t}/D/*.pfm"}
    return [
        ("c2-export", lambda t, m: export_model(m, f"{t}/x.onnx", check=False),
         "out {t}/x.onnx: a folder"),
        ("c2-import", lambda t, m: import_checkpoint(m, Path(f"{t}/x.safetensors")),
         "out {t}/x.safetensors: a folder"),
        ("c2-build", lambda t, m: build_weights("simple_cnn-mnist", None, Path(f"{t}/a_file"),
                                                Path(f"{t}/run"), log=lambda line: None),
         "out {t}/a_file: exists and is not a folder"),
        ("c3-filter", lambda t, m: stereo.predict_folder(
            m, *(p.format(t=t) for p in pair), f"{t}/o", filter=True, log=None),
         "filter needs `calibration` or `gt` or `pair_list`".replace("`", "")),
        ("c3-min-confidence", lambda t, m: stereo.predict_folder(
            m, *(p.format(t=t) for p in pair), f"{t}/o", min_confidence=0.7, log=None),
         "min_confidence needs filter"),
        ("c3-out-with-submission", lambda t, m: stereo.predict_folder(
            m, f"{t}/L", f"{t}/R", f"{t}/o", kitti_submission=f"{t}/ks", log=None),
         "out: not used with kitti_submission"),
        ("c3-load-download", lambda t, m: stereo.load(m, download=True),
         "download: only for registered weights by name"),
        ("c3-evaluate-split", lambda t, m: stereo.evaluate(
            m, "folder", split="val", folder={k: v.format(t=t) for k, v in folder.items()},
            log=None), "split: only for the official datasets"),
        ("c3-evaluate-count", lambda t, m: stereo.evaluate(m, "sceneflow", count=3, log=None),
         "count: only for dataset synthetic"),
        ("c3-report-format", lambda t, m: stereo.report(m, "synthetic", format="markdown",
                                                        log=None),
         "format needs out"),
        ("c3-import-weights-root", lambda t, m: import_checkpoint(
            m, Path(f"{t}/i.safetensors"), weights_root=t),
         "weights_root: only for registered weights by name"),
        ("c3-classify-which", lambda t, m: evaluate_classifier("simple_cnn-mnist", which="last"),
         "which: picks a run directory's checkpoint"),
        ("c6-predict-folder", lambda t, m: stereo.predict_folder(
            m, f"{t}/L", f"{t}/R", f"{t}/L", log=None),
         "out: writing {t}/L/000000_10_disp.png would overwrite the input"),
        ("c6-evaluate-json", lambda t, m: stereo.evaluate(
            m, "synthetic", json=f"{t}/link.json", log=None),
         "json: writing {t}/link.json would overwrite the input"),
        ("c6-export", lambda t, m: export_model(m, f"{t}/link.onnx", check=False),
         "out: writing {t}/link.onnx would overwrite the input"),
        ("c6-import", lambda t, m: import_checkpoint(m, Path(m)),
         "out: writing {ckpt} would overwrite the input"),
    ]


@pytest.mark.parametrize("row", range(16))
def test_api_refuses_before_work(row, places, tmp_path, guarded):  # noqa: F811
    rows = _api_rows()
    assert len(rows) == 16
    name, call, message = rows[row]
    names = _scratch(tmp_path, places["stereo"])
    before = _state(tmp_path)
    with pytest.raises(ConfigError) as caught:
        call(names["t"], names["ckpt"])
    text = str(caught.value)
    assert text.startswith(message.format(**names)), (name, text)
    assert "\n" not in text and "--" not in text, text
    assert _state(tmp_path) == before, f"{name}: a refused call changed files"


def test_options_given_where_they_matter_still_run(places, tmp_path):  # noqa: F811
    """The rules refuse only what changes nothing: --filter with --gt, --min-confidence with
    --filter, the ground-truth format with --gt still predict (SGBM: fast, no model)."""
    names = _scratch(tmp_path, places["stereo"])
    result = stereo.predict_folder(
        stereo.load("sgbm", max_disparity=32), f"{names['t']}/L/000000_10.png",
        f"{names['t']}/R/000000_10.png",
        tmp_path / "out", gt=f"{names['t']}/D/000000_10.pfm", gt_format="pfm", gt_scale=1.0,
        log=None)
    assert (tmp_path / "out" / "000000_10_error.png").is_file() and len(result) == 1


def test_rules_name_only_parameters_of_their_function():
    from cnnlab.engine.options import effective_when, needs

    with pytest.raises(TypeError, match="no parameter typo"):
        effective_when(typo=needs("x", why="y"))(lambda x=None: x)
