"""stereo/export.py: PSMNet as ONNX with dynamic height and width, checked against PyTorch."""

import json

import pytest

from cnnlab.cli import main
from cnnlab.engine.checkpoint import save_checkpoint
from cnnlab.stereo.card import psmnet_card
from cnnlab.stereo.models import PSMNet, PSMNetConfig

onnx = pytest.importorskip("onnx", reason="the 'export' extra (onnx) is not installed")
pytest.importorskip("onnxruntime", reason="the 'export' extra (onnxruntime) is not installed")
pytest.importorskip("onnxscript", reason="the 'export' extra (onnxscript) is not installed")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    config = PSMNetConfig(max_disparity=16, blocks=(1, 1, 1, 1))
    path = tmp_path_factory.mktemp("export") / "tiny.safetensors"
    save_checkpoint(path, PSMNet(config).state_dict(), {"card": psmnet_card(config).to_dict()})
    return path


@pytest.mark.slow  # about 15 s
def test_one_export_answers_like_pytorch_at_other_sizes(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "psmnet.onnx"
    assert main(["stereo", "export", "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                 "--min-size", "256x512", "--max-size", "320x1024"]) == 0
    text = capsys.readouterr().out
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
