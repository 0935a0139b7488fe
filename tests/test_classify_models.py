import pytest
import torch
import torchvision
from torch import nn

from cnnlab.classify.networks import MODELS, create_model
from cnnlab.classify.networks.resnet import BasicBlock
from cnnlab.classify.summary import layer_summary
from cnnlab.errors import ConfigError

# Parameter counts for in_channels=1, 10 classes, computed from the layer definitions
# (e.g. simple_cnn: 1*20*9+20 + 20*50*9+50 + 50*20*9+20 + 180*100+100 + 100*10+10).
EXPECTED_PARAMS = {
    "mlp": 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10,
    "mlp_sigmoid": 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10,
    "simple_cnn": 37380,
    "lenet5": 156 + 2416 + 48120 + 10164 + 850,
    "lenet": 156 + 2416 + 48120 + 10164 + 850,
    "simple_vgg": 9281738,
    "simple_resnet": 4904650,
    "alexnet": 46764746,
    "vgg11": 128806154,
    "vgg16": 134300362,
    "googlenet": 5977530,
    "resnet18": 11172810,
}
HEAVY = {"alexnet", "vgg11", "vgg16", "resnet50"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_shape_and_parameter_count(name):
    entry = MODELS[name]
    channels = 3 if name == "resnet50" else 1
    model = create_model(name, in_channels=channels).eval()
    size = entry.input_size or 28
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 10)
    params = sum(p.numel() for p in model.parameters())
    if name == "resnet50":  # same architecture as torchvision's
        assert params == sum(p.numel() for p in torchvision.models.resnet50(num_classes=10)
                             .parameters())
    else:
        assert params == EXPECTED_PARAMS[name]


def test_vgg16_matches_torchvision_parameters():
    reference = torchvision.models.vgg16(num_classes=10)
    reference.features[0] = nn.Conv2d(1, 64, 3, padding=1)
    ours = create_model("vgg16")
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]


def test_simple_cnn_shapes():
    shapes = [r["output_shape"] for r in layer_summary(create_model("simple_cnn"), (1, 1, 28, 28))]
    assert (1, 20, 26, 26) in shapes and (1, 50, 5, 5) in shapes
    assert (1, 20, 3, 3) in shapes  # 3x3x20 before the FC layers
    assert (1, 180) in shapes


def test_simple_vgg_shape_table():
    rows = layer_summary(create_model("simple_vgg"), (1, 1, 28, 28))
    convs = [r["output_shape"] for r in rows if r["type"] == "Conv2d"]
    pools = [r["output_shape"] for r in rows if r["type"] == "MaxPool2d"]
    assert [s[1:] for s in convs] == [(64, 30, 30), (128, 17, 17), (256, 10, 10), (256, 10, 10),
                                      (512, 5, 5), (512, 5, 5), (512, 2, 2), (512, 2, 2)]
    assert [s[2] for s in pools] == [15, 8, 5, 2, 1]
    assert rows[-1]["type"] == "Linear"  # no ReLU after the logits


def test_logits_can_be_negative():
    torch.manual_seed(0)
    for name in ("simple_vgg", "simple_cnn", "mlp"):
        out = create_model(name).eval()(torch.randn(8, 1, 28, 28))
        assert (out < 0).any(), name


def test_basic_block_shortcut():
    same = BasicBlock(16, 16, 1)
    assert isinstance(same.shortcut, nn.Identity)
    down = BasicBlock(16, 32, 2)
    assert isinstance(down.shortcut[0], nn.Conv2d) and down.shortcut[0].stride == (2, 2)
    x = torch.randn(2, 16, 8, 8)
    assert down(x).shape == (2, 32, 4, 4)
    # identity path: with the residual branch zeroed the block is relu(x)
    for p in same.conv2.parameters():
        nn.init.zeros_(p)
    same.eval()
    assert torch.allclose(same(x), torch.relu(x))


def test_width_options():
    narrow = create_model("vgg11", width_ratio=8)
    assert sum(p.numel() for p in narrow.parameters()) < 3_000_000
    assert create_model("vgg11", width_ratio=8)(torch.randn(1, 1, 224, 224)).shape == (1, 10)
    small = create_model("resnet18", width=16)
    assert small(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_bad_model_arguments():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(ConfigError, match="has no option depth"):
        create_model("resnet18", depth=3)
    with pytest.raises(ConfigError, match="stem"):
        create_model("resnet18", stem="tiny")
