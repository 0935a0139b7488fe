"""stereo/export.py: PSMNet as ONNX with dynamic height and width, checked against PyTorch."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.engine.checkpoint import save_checkpoint
from cnnlab.stereo.data.io import read_pfm
from cnnlab.stereo.models import PSMNet, PSMNetConfig
from cnnlab.stereo.weights.card import psmnet_card

onnx = pytest.importorskip("onnx", reason="the 'export' extra (onnx) is not installed")
pytest.importorskip("onnxruntime", reason="the 'export' extra (onnxruntime) is not installed")
pytest.importorskip("onnxscript", reason="the 'export' extra (onnxscript) is not installed")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    config = PSMNetConfig(max_disparity=16, blocks=(1, 1, 1, 1))
    path = tmp_path_factory.mktemp("export") / "tiny.safetensors"
    save_checkpoint(path, PSMNet(config).state_dict(), {"card": psmnet_card(config).to_dict()})
    return path


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    """The tiny model exported for 256x512 to 320x1024, and what the export printed."""
    out = tmp_path_factory.mktemp("exported") / "psmnet.onnx"
    import contextlib
    import io
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["stereo", "export", "--checkpoint", str(tiny_checkpoint), "--out",
                     str(out), "--min-size", "256x512", "--max-size", "320x1024"]) == 0
    return out, printed.getvalue()


@pytest.mark.slow  # about 15 s
def test_one_export_answers_like_pytorch_at_other_sizes(exported):
    out, text = exported
    lines = [line for line in text.splitlines() if "ONNX Runtime vs PyTorch" in line]
    assert [line.split(" at ")[1].split(":")[0] for line in lines] == ["256x512", "288x768"]
    for line in lines:  # float rounding only (random weights make the soft-argmin sensitive)
        assert float(line.split("max ")[1].split(" px")[0]) < 0.05, line
    model = onnx.load(str(out))
    metadata = {p.key: p.value for p in model.metadata_props}
    assert json.loads(metadata["cnnlab_card"])["kwargs"]["max_disparity"] == 16
    assert json.loads(metadata["cnnlab_sizes"]) == {"min": [256, 512], "max": [320, 1024]}
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == [1, 3] and all(isinstance(d, str) for d in dims[2:])  # symbolic H, W


@pytest.mark.parametrize("sizes, fragment", [
    (["--min-size", "250x512"], "multiples of 16"),
    (["--min-size", "128x512"], "at least 256x512"),
    (["--min-size", "512x512", "--max-size", "256x1024"], "the smaller first"),
    (["--out", "{tmp}/psmnet.onx"], "must end in .onnx"),
])
def test_a_bad_size_range_is_refused_before_exporting(tiny_checkpoint, tmp_path, capsys,
                                                      sizes, fragment):
    out = tmp_path / "psmnet.onnx"
    sizes = [a.format(tmp=tmp_path) for a in sizes]
    assert main(["stereo", "export", "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                 *sizes]) == 1
    captured = capsys.readouterr()
    assert fragment in captured.err and not list(tmp_path.iterdir())
    assert captured.out == ""  # refused before the model was loaded (its card is printed)


@pytest.mark.slow  # the export, about 15 s, shared with the test above
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_stereo_predict_runs_the_export(runtime, exported, tiny_checkpoint, tmp_path, capsys):
    """An exported file answers through ``stereo predict --runtime`` as PyTorch does; a pair
    outside the exported range is refused."""
    pytest.importorskip(runtime, reason=f"{runtime} is not installed")
    out, _ = exported
    rng = np.random.default_rng(0)
    left = rng.integers(0, 255, (260, 520, 3), dtype=np.uint8)  # padded to 272x528
    Image.fromarray(left).save(tmp_path / "l.png")
    Image.fromarray(np.roll(left, -4, axis=1)).save(tmp_path / "r.png")
    pair = [str(tmp_path / "l.png"), str(tmp_path / "r.png")]
    assert main(["stereo", "predict", *pair, "--checkpoint", str(tiny_checkpoint),
                 "--precision", "fp32", "--out", str(tmp_path / "torch")]) == 0
    assert main(["stereo", "predict", *pair, "--checkpoint", str(out), "--runtime", runtime,
                 "--precision", "fp32", "--out", str(tmp_path / runtime)]) == 0
    assert f"run by {runtime}" in capsys.readouterr().out
    ours = read_pfm(tmp_path / "torch" / "l_disp.pfm")
    theirs = read_pfm(tmp_path / runtime / "l_disp.pfm")
    assert theirs.shape == ours.shape == (260, 520)
    assert np.abs(theirs - ours).max() < 0.05  # float rounding (random weights, see above)
    for height, width in ((300, 1040), (100, 600)):
        image = tmp_path / f"{height}x{width}.png"
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(image)
        assert main(["stereo", "predict", str(image), str(image), "--checkpoint", str(out),
                     "--runtime", runtime, "--out", str(tmp_path / "outside")]) == 1
        shown = capsys.readouterr()
        assert (f"exported for pairs of 256x512 to 320x1024 (HxW, after padding to multiples "
                f"of 16), this one is {height}x{width}") in shown.err
        assert "Running" not in shown.out + shown.err  # refused before the pair runs
