"""Stereo training resumes exactly (the stereo twin of test_classify_train's resume test): 2
epochs straight through == 1 epoch, then --resume to 2. Weights, optimizer state, RNG states,
best checkpoint and every metric must be identical, so a resume that drops the checkpoint's
weights, optimizer moments, RNG state (jittered crops) or schedule position fails here."""

import csv
import json

from safetensors.torch import load_file

from cnnlab.cli import main

# the smallest preset (its architecture, cosine schedule and jitter), on tiny synthetic pairs
RECIPE = ["--dataset", "synthetic", "--preset", "cpu-small", "--crop", "32x64",
          "--synthetic-size", "48x80", "--samples-per-epoch", "4", "--val-count", "2",
          "--batch-size", "2", "--workers", "0", "--max-disparity", "16", "--blocks", "1,1,1,1",
          "--no-progress"]
TIMINGS = ("seconds", "images_per_s")


def _rows(run) -> list[dict]:
    with open(run / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMINGS}
                for row in csv.DictReader(handle)]


def _assert_same_tensors(a_path, b_path) -> None:
    a, b = load_file(str(a_path)), load_file(str(b_path))
    assert a.keys() == b.keys()
    assert any(k.startswith("model.") for k in a)
    different = [k for k in a if not (a[k].dtype == b[k].dtype and a[k].equal(b[k]))]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:5]}"


def test_stereo_resume_is_exact(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["stereo", "train", *RECIPE, "--epochs", "2", "--out", str(straight)]) == 0
    assert main(["stereo", "train", *RECIPE, "--epochs", "2", "--stop-after", "1",
                 "--out", str(split)]) == 0
    assert json.loads((split / "last.json").read_text())["epoch"] == 1
    assert len(_rows(split)) == 1
    # the run's own recipe is used: no flags need repeating
    assert main(["stereo", "train", "--resume", str(split), "--no-progress"]) == 0
    assert json.loads((split / "last.json").read_text())["epoch"] == 2
    _assert_same_tensors(straight / "last.safetensors", split / "last.safetensors")
    _assert_same_tensors(straight / "best.safetensors", split / "best.safetensors")
    rows = _rows(straight)
    assert [r["epoch"] for r in rows] == ["1", "2"] and "val_epe" in rows[0]
    assert _rows(split) == rows
    results = [json.loads((run / "results.json").read_text()) for run in (straight, split)]
    for result in results:
        result.pop("epoch_seconds_total")
    assert results[0] == results[1]
