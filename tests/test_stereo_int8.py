"""stereo.inference.int8: PSMNet's 3-D stage in int8 (``precision="int8"``): the transposed
convs as sub-pixel convs, the stage against fp32, the hook in the model, the cached
calibration, and the refusals, each in one line naming ``precision``."""

import json

import numpy as np
import pytest
import torch
from tests.conftest import shared_path, shared_weights
from torch import nn

import cnnlab.stereo as stereo
from cnnlab.engine.precision import inference_precision, int8_native
from cnnlab.errors import ConfigError
from cnnlab.stereo.data.preprocess import IMAGENET_PREPROCESS
from cnnlab.stereo.inference import int8
from cnnlab.stereo.models.psmnet import PSMNet

pytestmark = pytest.mark.filterwarnings("ignore:.*quantiz.*deprecated")
# the refusals are checked everywhere; what runs int8 needs a CPU with VNNI
needs_vnni = pytest.mark.skipif(not int8_native(), reason="int8 needs a CPU with VNNI")
CPU = torch.device("cpu")


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, text
    return text


@pytest.fixture
def quick_calibration(monkeypatch):
    """One small synthetic scene: the recipe's code path, in a fraction of the time."""
    monkeypatch.setitem(int8.CALIBRATION, "scenes", 1)
    monkeypatch.setitem(int8.CALIBRATION, "size", (64, 128))


def _tiny_model() -> PSMNet:
    torch.manual_seed(0)
    model = PSMNet(max_disparity=32, blocks=(1, 1, 1, 1)).eval()
    for module in model.modules():  # BN statistics away from the identity
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return model.fuse_for_inference()


@needs_vnni
@pytest.mark.parametrize("n_in, n_out", [(16, 16), (16, 8)])
def test_subpixel_deconv_equals_the_transposed_conv_up_to_quantization(n_in, n_out):
    """Both channel counts equal and different (oneDNN's own quantized transposed conv is
    wrong when they differ)."""
    torch.manual_seed(0)
    conv = nn.ConvTranspose3d(n_in, n_out, 3, stride=2, padding=1, output_padding=1).eval()
    x = torch.randn(1, n_in, 4, 6, 10).relu()
    qx = torch.quantize_per_tensor(x, x.max().item() / 255, 0, torch.quint8)
    qx = qx.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        reference = conv(qx.dequantize())
    low, high = reference.min().item(), reference.max().item()
    scale = (high - low) / 255
    torch.backends.quantized.engine = int8.ENGINE
    module = int8.SubpixelDeconv(conv, scale, round(-low / scale))
    out = module(qx)
    assert out.shape == reference.shape == (1, n_out, 8, 12, 20)
    error = (out.dequantize() - reference).abs()
    assert error.max() <= 2 * scale  # the output rounding and the weights' (1/254 relative)
    assert error.norm() / reference.norm() < 0.03  # ~scale/sqrt(12) per value


@needs_vnni
def test_int8_stage_is_close_to_the_fp32_final_cost(quick_calibration, tmp_path):
    model = _tiny_model()
    stage = int8.int8_stage(model, IMAGENET_PREPROCESS, folder=tmp_path)
    left = torch.randn(1, 3, 64, 128)
    right = torch.roll(left, 4, -1)
    with torch.no_grad():
        features = [model.features(x.contiguous(memory_format=torch.channels_last))
                    for x in (left, right)]
        reference = model.aggregate_costs(*features)[-1]
        mirror = int8.FloatStage(model).costs(*features)
        cost = stage(*features)
    assert (mirror - reference).abs().max() < 1e-4  # the wiring is the model's
    assert cost.dtype == torch.float32 and cost.shape == reference.shape
    assert (cost - reference).norm() / reference.norm() < 0.05


@needs_vnni
def test_the_model_runs_an_attached_stage_in_eval_only_and_training_drops_it(
        quick_calibration, tmp_path):
    model = _tiny_model()
    int8.attach_int8_stage(model, IMAGENET_PREPROCESS, folder=tmp_path)
    stage = model.int8_stage
    assert isinstance(stage, int8.Int8Stage)
    # derived data, not a part of the network: no new weights in checkpoints, .to() or modules
    assert not any("int8" in name for name in model.state_dict())
    assert all(m is not stage for m in model.modules())
    features = [torch.randn(1, 32, 16, 32) for _ in range(2)]
    with torch.no_grad():
        costs = model.aggregate_costs(*features)
        assert len(costs) == 1 and torch.equal(costs[0], stage(*features, 8))
        model.train()
    assert model.int8_stage is None
    with pytest.raises(ConfigError, match="precision int8: for inference only"):
        int8.int8_stage(model, IMAGENET_PREPROCESS, folder=tmp_path)


@needs_vnni
def test_load_int8_calibrates_once_then_reads_the_cache(tiny_checkpoint, isolated_roots,
                                                        quick_calibration):
    lines: list[str] = []
    model = stereo.load(tiny_checkpoint, precision="int8", log=lines.append)
    assert model.precision == "int8"
    assert sum("Calibrating int8" in line for line in lines) == 1
    cached = list((isolated_roots / "cnnlab" / "int8").glob("*.json"))
    assert len(cached) == 1
    stored = json.loads(cached[0].read_text())
    assert set(stored["qparams"]) == set(int8.activation_names())
    assert stored["key"]["max_disparity"] == 32

    lines.clear()
    again = stereo.load(tiny_checkpoint, precision="int8", log=lines.append)
    assert not any("Calibrating" in line for line in lines)
    assert again.network.int8_stage.qparams == model.network.int8_stage.qparams

    cached[0].write_text("{not json")  # damaged: computed again, no traceback
    lines.clear()
    stereo.load(tiny_checkpoint, precision="int8", log=lines.append)
    assert sum("Calibrating int8" in line for line in lines) == 1
    assert json.loads(cached[0].read_text())["qparams"] == stored["qparams"]  # deterministic


@needs_vnni
def test_one_network_serves_int8_and_other_precisions(tiny_checkpoint, isolated_roots,
                                                      quick_calibration):
    rng = np.random.default_rng(0)
    left = rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)
    right = np.roll(left, -4, axis=1)
    fp32 = np.asarray(stereo.load(tiny_checkpoint, precision="fp32").predict(left, right))
    model = stereo.load(tiny_checkpoint, precision="int8")
    quantized = np.asarray(model.predict(left, right))
    assert quantized.shape == fp32.shape and np.isfinite(quantized).all()
    # the attached stage is used for int8 only
    assert np.array_equal(np.asarray(model.predict(left, right, precision="fp32")), fp32)
    assert model.network.int8_stage is not None
    # a preview searches a smaller range with the same stage
    preview = model.predict(left, right, scale=0.5)
    assert np.isfinite(np.asarray(preview)).all() and preview.settings["precision"] == "int8"
    # a model loaded in fp32 gets its stage when asked for int8
    plain = stereo.load(tiny_checkpoint, precision="fp32")
    assert np.array_equal(np.asarray(plain.predict(left, right, precision="int8")), quantized)


def test_int8_refusals_are_one_line_and_name_precision(tiny_checkpoint, tmp_path, monkeypatch):
    assert inference_precision("auto", CPU) != "int8"  # never picked for the user
    with pytest.raises(ConfigError) as sgbm:
        stereo.load("sgbm", precision="int8")
    assert "precision" in one_line(sgbm.value) and "sgbm" in str(sgbm.value)
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"")
    with pytest.raises(ConfigError, match="precision int8: `?runtime`? onnxruntime") as exported:
        stereo.load(graph, precision="int8")
    assert "use runtime torch" in one_line(exported.value)
    monkeypatch.setattr("cnnlab.engine.precision.int8_native", lambda: False)
    with pytest.raises(ConfigError, match="precision int8: this CPU has no VNNI") as plain:
        stereo.load(tiny_checkpoint, precision="int8")
    assert "use fp32" in one_line(plain.value)
    monkeypatch.undo()
    from cnnlab.stereo.api import ModelSpec
    from cnnlab.stereo.inference.export import export_model

    with pytest.raises(ConfigError, match="precision int8: an exported graph holds the fp32"):
        export_model(ModelSpec(tiny_checkpoint, precision="int8"), tmp_path / "int8.onnx")
    assert not (tmp_path / "int8.onnx").exists()


def test_int8_refuses_the_basic_variant():
    model = PSMNet(max_disparity=32, blocks=(1, 1, 1, 1), variant="basic").eval()
    with pytest.raises(ConfigError, match="precision int8: for the stackhourglass variant"):
        int8.check_int8_model(model)


@needs_vnni
@pytest.mark.slow
def test_official_weights_in_int8_hold_kitti_accuracy(isolated_roots):
    """KITTI 2015 000000, full size: D1 within 0.1 point and EPE within 0.05 px of fp32."""
    from cnnlab.stereo.data.io import read_image, read_kitti_disparity
    from cnnlab.stereo.evaluation.metrics import error_counts, rates

    root = shared_weights("PSMNet", "pretrained_model_KITTI2015.tar").parents[1]
    left = read_image(shared_path("KITTI2015", "training", "image_2", "000000_10.png"))
    right = read_image(shared_path("KITTI2015", "training", "image_3", "000000_10.png"))
    gt, valid = read_kitti_disparity(shared_path("KITTI2015", "training", "disp_occ_0",
                                                 "000000_10.png"))
    model = stereo.load("psmnet-kitti2015", weights_root=root, precision="int8")
    figures = {}
    for precision in ("fp32", "int8"):
        disparity = np.asarray(model.predict(left, right, precision=precision))
        figures[precision] = rates(error_counts(torch.from_numpy(disparity),
                                                torch.from_numpy(gt), torch.from_numpy(valid)))
    assert abs(figures["int8"]["d1"] - figures["fp32"]["d1"]) <= 0.1, figures
    assert abs(figures["int8"]["epe"] - figures["fp32"]["epe"]) <= 0.05, figures
