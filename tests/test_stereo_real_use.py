"""Stereo for real use: many pairs, SGBM in predict, a KITTI submission, the left-right check,
confidence and its sparsification curve, the memory estimate and tiling, folder datasets
through the commands."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from helpers import textured_pair
from PIL import Image
from tests.conftest import shared_path

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.stereo.data.io import Calibration, read_kitti_disparity
from cnnlab.stereo.inference.budget import IMAGE_MB_PER_PIXEL, estimate_peak_mb, tile_for_budget
from cnnlab.stereo.inference.confidence import Sparsification, left_right_consistent
from cnnlab.stereo.inference.predict import Method, disparity_needed, predict_views, range_advice
from cnnlab.stereo.inference.sgbm import sgbm_disparity
from cnnlab.stereo.inference.tiling import TILE_MARGIN, plan_tiles, tiled_forward
from cnnlab.stereo.models.psmnet import PSMNet, precise_disparity_regression

# ------------------------------------------------------------------ left-right check, confidence


def test_left_right_check_flags_a_planted_region():
    height, width = 20, 60
    right_disparity = np.full((height, width), 10.0)
    left_disparity = np.full((height, width), 10.0)
    left_disparity[5:9, 30:40] = 17.0  # planted: the right view says 10 there
    consistent = left_right_consistent(left_disparity, right_disparity)
    expected = np.ones((height, width), bool)
    expected[5:9, 30:40] = False
    expected[:, :10] = False  # x - 10 < 0: the match leaves the right view
    assert np.array_equal(consistent, expected)


def test_predict_views_checks_the_mirrored_pair():
    """A method that plants an error in the left view's disparity only: the check finds it."""
    left, right = textured_pair(20, 60)
    calls = []

    def run(a, b, rated=True):
        calls.append(a)
        disparity = np.full(a.shape[:2], 10.0, np.float32)
        if len(calls) == 1:
            disparity[5:9, 30:40] = 17.0
        return {"disparity": disparity, "valid": np.ones(a.shape[:2], bool)}

    prediction = predict_views(Method("fake", "fake", 32, run), left, right, lr_check=True)
    assert np.array_equal(calls[1], right[:, ::-1])  # the mirrored right view went first
    assert not prediction.consistent[5:9, 30:40].any()
    assert prediction.consistent[:, 10:30].all() and prediction.consistent[:, 40:].all()
    kept = prediction.kept(0.5)
    assert not kept[5:9, 30:40].any() and kept.mean() > 0.7


def test_confidence_is_the_probability_mass_near_the_estimate():
    torch.manual_seed(0)
    cost = torch.randn(1, 1, 12, 8, 16) * 4
    disparity, confidence = precise_disparity_regression(cost, 48, (32, 64), True, 8, 2.0)
    full = torch.nn.functional.interpolate(cost.double(), (48, 32, 64), mode="trilinear",
                                           align_corners=True)[:, 0]
    probability = torch.softmax(full, 1)
    levels = torch.arange(48, dtype=torch.float64)[None, :, None, None]
    mass = (probability * ((levels - disparity.double()[:, None]).abs() <= 2)).sum(1)
    assert torch.allclose(confidence.double(), mass, atol=2e-3)
    assert torch.allclose(disparity, precise_disparity_regression(cost, 48, (32, 64), True, 8))
    assert confidence.min() >= 0 and confidence.max() <= 1 + 1e-6


def test_sparsification_curve_drops_the_least_confident_first():
    error = np.array([5.0, 4.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    confidence = np.array([0.1, 0.2, 0.5, 0.6, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9])
    curves = Sparsification()
    curves.add(error[:4], confidence[:4])  # two pairs, streamed
    curves.add(error[4:], confidence[4:])
    curve = curves.curve((0.0, 0.1, 0.2, 0.5))
    assert curve["epe"] == pytest.approx([1.2, 7 / 9, 3 / 8, 0.0], abs=1e-9)
    assert curve["oracle_epe"] == pytest.approx([1.2, 7 / 9, 3 / 8, 0.0], abs=1e-9)
    flipped = Sparsification()  # a confidence that is wrong: the worst pixels kept longest
    flipped.add(error, 1 - confidence)
    assert flipped.curve((0.0, 0.5))["epe"][1] == pytest.approx(12 / 5)
    assert curves.pixels == 10


# ------------------------------------------------------------------------- memory and tiling


MEASURE = """
import sys, torch
from cnnlab.engine.memory import keep_freed_memory, peak_growth_mb
from cnnlab.engine.precision import inference_autocast
from cnnlab.stereo.models.psmnet import PSMNet
h, w, d, precision = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(2)
keep_freed_memory()
model = PSMNet(max_disparity=d).eval().fuse_for_inference()
left, right = torch.randn(1, 3, h, w), torch.randn(1, 3, h, w)
with torch.no_grad(), inference_autocast(torch.device("cpu"), precision):
    print(peak_growth_mb(lambda: model(left, right)))
"""


@pytest.mark.parametrize("height, width, max_disparity, precision",
                         # sizes where the cost volume dominates: at 192x384 the fixed
                         # overheads (autocast's weight copies, oneDNN's caches) swing by 30 MB
                         [(256, 512, 192, "fp32"), (256, 512, 192, "bf16")])
def test_memory_estimate_within_30_percent_of_the_measured_peak(height, width, max_disparity,
                                                                precision):
    if precision == "bf16":
        from cnnlab.engine.precision import native_precisions

        if "bf16" not in native_precisions(torch.device("cpu")):
            pytest.skip("this CPU has no native bf16")
    printed = subprocess.run(
        [sys.executable, "-c", MEASURE, str(height), str(width), str(max_disparity),
         precision], capture_output=True, text=True, check=True).stdout.split()[-1]
    if printed == "None":
        pytest.skip("no /proc/self/clear_refs here to measure a peak with")
    measured = float(printed)
    estimated = estimate_peak_mb(height, width, max_disparity, precision)
    assert abs(estimated - measured) <= 0.3 * measured, (estimated, measured)


def test_tiles_partition_the_image_and_see_their_matches():
    height, width, max_disparity = 300, 700, 48
    tiles = plan_tiles(height, width, (200, 400), max_disparity)
    covered = np.zeros((height, width), int)
    for tile in tiles:
        y0, y1, x0, x1 = tile.keep
        cy0, cy1, cx0, cx1 = tile.crop
        covered[y0:y1, x0:x1] += 1
        assert cy1 - cy0 <= 200 and cx1 - cx0 <= 400
        # every match x - d of a kept pixel stays in the crop, with the margin beside it
        assert cx0 == max(0, x0 - max_disparity - TILE_MARGIN)
        assert cy0 == max(0, y0 - TILE_MARGIN) and cy1 == min(height, y1 + TILE_MARGIN)
    assert (covered == 1).all() and len(tiles) == 5 * 4  # 72 rows and 224 columns kept at most
    assert len(plan_tiles(height, width, (height, width), max_disparity)) == 1
    with pytest.raises(ConfigError, match="wider than the disparity range"):
        plan_tiles(height, width, (200, 200), max_disparity)


def test_a_single_tile_is_the_whole_run_and_strips_fill_the_map():
    torch.manual_seed(0)
    model = PSMNet(max_disparity=32, blocks=(1, 1, 1, 1)).eval()
    left, right = torch.randn(1, 3, 256, 96), torch.randn(1, 3, 256, 96)
    with torch.no_grad():
        whole = model(left, right)["disparity"]
        single = tiled_forward(model, left, right, (256, 96))["disparity"]
        strips = tiled_forward(model, left, right, (160, 96))["disparity"]  # 8 strips
    assert torch.equal(whole, single)
    assert strips.shape == whole.shape and torch.isfinite(strips).all()


def test_the_tile_for_a_budget_fits_it_full_height_first():
    assert tile_for_budget(375, 1242, 192, "bf16", 10_000) is None
    for budget in (2_000, 1_000, 500):
        tile = tile_for_budget(2000, 3000, 192, "bf16", budget)
        room = budget - IMAGE_MB_PER_PIXEL * 2000 * 3000
        assert estimate_peak_mb(*tile, 192, "bf16") <= room
        assert tile[1] - 192 - 2 * TILE_MARGIN >= 192 + 2 * TILE_MARGIN  # at most 2x columns
    kitti = tile_for_budget(375, 1242, 192, "bf16", 500)  # column tiles of full height
    assert kitti[0] == 375 and kitti[1] < 1242
    with pytest.raises(ConfigError, match="max_memory 10 MB"):
        tile_for_budget(2000, 3000, 192, "bf16", 10)


def test_range_advice_from_the_calibration():
    calibration = Calibration(721.5, 0.54)
    assert disparity_needed(calibration, 2.0) == pytest.approx(194.805)
    line, short = range_advice(calibration, 2.0, 192)
    assert short and "--max-disparity 208" in line
    assert not range_advice(calibration, 5.0, 192)[1]


# ---------------------------------------------------------------------------- the commands


def test_predict_two_folders_with_sgbm(pair_folders, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["stereo", "predict", str(pair_folders / "left"), str(pair_folders / "right"),
                 "--model", "sgbm", "--max-disparity", "32", "--gt",
                 str(pair_folders / "disp"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for i in range(3):
        assert f"[{i + 1}/3] {i:06d}_10: 128x64" in text
        assert (out / f"{i:06d}_10_disp.png").is_file()
        assert (out / f"{i:06d}_10_error.png").is_file()
    assert "EPE" in text and "Outputs of 3 pairs" in text


def test_kitti_submission_decodes_back_to_the_prediction(pair_folders, tmp_path, capsys):
    submission = tmp_path / "submit"
    assert main(["stereo", "predict", str(pair_folders / "left"), str(pair_folders / "right"),
                 "--model", "sgbm", "--max-disparity", "32",
                 "--kitti-submission", str(submission)]) == 0
    assert "KITTI submission" in capsys.readouterr().out
    with zipfile.ZipFile(tmp_path / "submit.zip") as archive:
        assert sorted(archive.namelist()) == [f"disp_0/{i:06d}_10.png" for i in range(3)]
    for i in range(3):
        left = np.asarray(Image.open(pair_folders / "left" / f"{i:06d}_10.png"))
        right = np.asarray(Image.open(pair_folders / "right" / f"{i:06d}_10.png"))
        expected, valid = sgbm_disparity(left, right, 32)
        decoded, decoded_valid = read_kitti_disparity(submission / "disp_0" / f"{i:06d}_10.png")
        assert np.array_equal(decoded_valid, valid & (expected > 0))
        assert np.abs(decoded - expected)[valid].max() <= 0.5 / 256 + 1e-6


def test_submission_refuses_names_that_are_not_kitti_frames(tmp_path, capsys):
    left, right = textured_pair()
    Image.fromarray(left).save(tmp_path / "a.png")
    Image.fromarray(right).save(tmp_path / "b.png")
    assert main(["stereo", "predict", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                 "--model", "sgbm", "--max-disparity", "16",
                 "--kitti-submission", str(tmp_path / "s")]) == 1
    assert "a: not a KITTI test frame name" in capsys.readouterr().err


def test_predict_a_list_with_psmnet_lr_check_filter_and_tiles(pair_folders, tiny_checkpoint,
                                                              tmp_path, capsys):
    listing = pair_folders / "pairs.txt"
    listing.write_text("# left right ground truth\n"
                       + "".join(f"left/{i:06d}_10.png right/{i:06d}_10.png "
                                 f"disp/{i:06d}_10.pfm\n" for i in range(2)))
    out = tmp_path / "out"
    assert main(["stereo", "predict", "--list", str(listing), "--checkpoint",
                 str(tiny_checkpoint), "--lr-check", "--filter", "--focal", "100",
                 "--baseline", "0.1", "--tile", "96x128", "--precision", "fp32", "--out",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "[2/2] 000001_10: 128x64" in text
    for name in ("disp.png", "confidence.png", "lr.png", "depth.pfm"):
        assert (out / f"000000_10_{name}").is_file(), name
    confidence = np.asarray(Image.open(out / "000000_10_confidence.png"))
    assert confidence.shape == (64, 128) and confidence.max() > 0


def test_predict_refuses_a_pair_over_the_memory_budget_without_tiling(tiny_checkpoint,
                                                                      tmp_path, capsys):
    left, right = textured_pair(160, 320)
    Image.fromarray(left).save(tmp_path / "l.png")
    Image.fromarray(right).save(tmp_path / "r.png")
    argv = ["stereo", "predict", str(tmp_path / "l.png"), str(tmp_path / "r.png"),
            "--checkpoint", str(tiny_checkpoint), "--max-memory", "5", "--precision", "fp32",
            "--out", str(tmp_path / "out")]
    assert main([*argv, "--tile", "off"]) == 1
    assert "320x160: PSMNet needs about" in capsys.readouterr().err
    assert main([*argv, "--max-memory", "40"]) == 0  # auto: full-height tiles that fit
    assert "160x208 tiles" in capsys.readouterr().err


def test_folder_dataset_through_eval_and_train(pair_folders, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    globs = ["--left", str(pair_folders / "left" / "*.png"), "--right",
             str(pair_folders / "right" / "*.png"), "--gt", str(pair_folders / "disp" / "*")]
    assert main(["stereo", "eval", "--dataset", "folder", *globs, "--model", "sgbm",
                 "--max-disparity", "32", "--json", str(out)]) == 0
    result = json.loads(out.read_text())["results"]["folder/sgbm"]
    assert result["images"] == 3 and result["aggregate"]["all"]["epe"] < 2
    capsys.readouterr()
    listing = pair_folders / "val.txt"
    listing.write_text("left/000002_10.png right/000002_10.png disp/000002_10.pfm\n")
    run = tmp_path / "run"
    assert main(["stereo", "train", "--dataset", "folder", *globs, "--val-list", str(listing),
                 "--max-disparity", "16", "--blocks", "1,1,1,1", "--crop", "32x64",
                 "--samples-per-epoch", "2", "--batch-size", "2", "--epochs", "1",
                 "--no-progress", "--out", str(run)]) == 0
    assert json.loads((run / "results.json").read_text())["val"]["epe"] > 0
    assert main(["stereo", "eval", "--dataset", "folder", "--left", "x*", "--model",
                 "sgbm"]) == 1
    assert "--dataset folder needs --left and --right" in capsys.readouterr().err


def test_report_on_two_shared_datasets_with_sgbm(tmp_path, capsys):
    root = shared_path()
    out = tmp_path / "report.md"
    assert main(["stereo", "report", "--model", "sgbm", "--dataset", "middlebury", "--dataset",
                 "kitti2012", "--data-root", str(root), "--format", "markdown", "--out",
                 str(out)]) == 0
    text = out.read_text()
    assert "occluded" in text and "low-texture" in text and "](report_files/" in text
    datasets = json.loads(out.with_suffix(".json").read_text())["datasets"]
    # each section scores its own dataset's pairs
    assert [p["name"] for p in datasets["middlebury"]["per_pair"]] == ["cones", "teddy",
                                                                       "tsukuba", "venus"]
    assert [p["name"] for p in datasets["kitti2012"]["per_pair"]] == ["000000_10", "000001_10"]
    assert "Findings on middlebury" in capsys.readouterr().out


@pytest.mark.parametrize("extra, fragment", [
    (["--model", "sgbm", "--kitti-submission", "{tmp}/s", "--lr-check"],
     "--lr-check: not used with --kitti-submission"),
    (["--model", "sgbm", "--filter"], "--filter: SGBM already leaves out"),
    (["--model", "sgbm", "--tile", "64x64"], "--tile: not used by --model sgbm"),
    (["--model", "sgbm", "--gt", "{tmp}/gt8.png"], "8-bit ground truth; give its --gt-scale"),
    (["--weights", "psmnet-kitti2015", "--runtime", "onnxruntime", "--max-disparity", "96"],
     "--max-disparity: an exported graph"),
])
def test_predict_refuses_what_it_would_ignore(extra, fragment, tmp_path, capsys):
    left, right = textured_pair()
    Image.fromarray(left).save(tmp_path / "000000_10.png")
    Image.fromarray(right).save(tmp_path / "r.png")
    Image.fromarray(np.full(left.shape[:2], 40, np.uint8)).save(tmp_path / "gt8.png")
    argv = ["stereo", "predict", str(tmp_path / "000000_10.png"), str(tmp_path / "r.png"),
            "--out", str(tmp_path / "out"), *[a.format(tmp=tmp_path) for a in extra]]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1, err


def test_eval_and_report_refuse_folder_options_with_another_dataset(tmp_path, capsys):
    assert main(["stereo", "eval", "--dataset", "synthetic", "--model", "sgbm", "--left",
                 "x/*.png"]) == 1
    assert "--left: for --dataset folder only" in capsys.readouterr().err
    assert main(["stereo", "report", "--dataset", "synthetic", "--model", "sgbm", "--format",
                 "html", "--out", str(tmp_path / "r.md")]) == 1
    assert "a .md name for a html report" in capsys.readouterr().err


def test_a_submission_zips_only_this_runs_maps(pair_folders, tmp_path, capsys):
    submission = tmp_path / "submit"
    (submission / "disp_0").mkdir(parents=True)
    (submission / "disp_0" / "000199_10.png").write_bytes(b"from an earlier run")
    assert main(["stereo", "predict", str(pair_folders / "left" / "000000_10.png"),
                 str(pair_folders / "right" / "000000_10.png"), "--model", "sgbm",
                 "--max-disparity", "32", "--kitti-submission", str(submission)]) == 0
    with zipfile.ZipFile(tmp_path / "submit.zip") as archive:
        assert archive.namelist() == ["disp_0/000000_10.png"]
    assert "1 maps from an earlier run" in capsys.readouterr().err
