import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.stereo.models import PSMNet
from cnnlab.stereo.models.blocks import OneChannelConv3d, one_channel_conv3d
from cnnlab.stereo.models.cost_volume import build_concat_volume, build_concat_volume_loop
from cnnlab.stereo.models.psmnet import (
    SpatialPyramidPooling,
    disparity_regression,
    precise_disparity_regression,
)
from cnnlab.stereo.training.losses import disparity_loss, valid_mask

TINY = {"max_disparity": 16, "blocks": (1, 1, 1, 1)}


def test_default_parameter_count_equals_the_reference():
    # the published code prints "Number of model parameters: 5224768" for stackhourglass
    assert sum(p.numel() for p in PSMNet().parameters()) == 5_224_768


@pytest.mark.parametrize("variant", ["stackhourglass", "basic"])
@pytest.mark.parametrize("size", [(37, 53), (16, 16), (50, 71)])
def test_any_input_size(variant, size):
    model = PSMNet(variant=variant, **TINY).eval()
    left, right = torch.randn(2, 3, *size), torch.randn(2, 3, *size)
    with torch.no_grad():
        output = model(left, right)
    out = output["disparity"]
    assert output["disparities"] == [out] and out.shape == (2, *size)
    # a convex combination of 0..15, up to float rounding of the softmax weights
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 15 + 1e-4


def test_training_outputs():
    model = PSMNet(**TINY).train()
    output = model(torch.randn(1, 3, 33, 40), torch.randn(1, 3, 33, 40))
    outputs = output["disparities"]
    assert len(outputs) == 3 and outputs[-1] is output["disparity"]
    assert all(o.shape == (1, 33, 40) for o in outputs)
    basic = PSMNet(variant="basic", **TINY).train()
    output = basic(torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32))
    assert len(output["disparities"]) == 1 and output["disparity"].shape == (1, 32, 32)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 6), st.integers(1, 20),
       st.integers(1, 24), st.integers(0, 999))
def test_vectorised_cost_volume_equals_loop(b, c, h, w, levels, seed):
    g = torch.Generator().manual_seed(seed)
    left, right = torch.randn(b, c, h, w, generator=g), torch.randn(b, c, h, w, generator=g)
    assert torch.equal(build_concat_volume(left, right, levels),
                       build_concat_volume_loop(left, right, levels))


def test_spp_equals_fixed_pools_on_large_maps_and_works_on_small():
    torch.manual_seed(0)
    spp = SpatialPyramidPooling(8, 4, (64, 32, 16, 8), align_corners=False).eval()
    x = torch.randn(1, 8, 70, 130)
    with torch.no_grad():
        ours = spp(x)
        for pool, branch, out in zip((64, 32, 16, 8), spp.branches, ours):
            reference = F.interpolate(branch(F.avg_pool2d(x, pool, pool)), (70, 130),
                                      mode="bilinear", align_corners=False)
            torch.testing.assert_close(out, reference)
        small = spp(torch.randn(1, 8, 5, 9))  # below every pool: clipped windows
    assert all(o.shape == (1, 4, 5, 9) and torch.isfinite(o).all() for o in small)


def _calibrated(model: PSMNet, size=(32, 48)) -> PSMNet:
    """Give BN realistic running statistics so outputs are not dominated by huge activations."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, *size), torch.randn(2, 3, *size))
    return model.eval()


def test_fused_and_chunked_inference_match_plain():
    torch.manual_seed(0)
    model = _calibrated(PSMNet(max_disparity=32, blocks=(1, 2, 1, 1)))
    left, right = torch.randn(1, 3, 45, 70), torch.randn(1, 3, 45, 70)
    with torch.no_grad():
        model.row_chunk = None
        plain = model(left, right)["disparity"]
        model.row_chunk = 7
        chunked = model(left, right)["disparity"]
        model.fuse_for_inference()
        fused = model(left, right)["disparity"]
    torch.testing.assert_close(chunked, plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fused, plain, atol=2e-3, rtol=1e-3)
    model.train()  # training must drop the fused copies
    assert all(m.fused is None for m in model.modules() if hasattr(m, "fused"))


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_one_channel_conv3d_equals_the_convolution(batch, layout):
    torch.manual_seed(batch)
    x = torch.randn(batch, 32, 5, 6, 7).contiguous(memory_format=layout)
    weight = torch.randn(1, 32, 3, 3, 3)
    expected = F.conv3d(x, weight, padding=1)
    torch.testing.assert_close(one_channel_conv3d(x, weight), expected, atol=1e-4, rtol=1e-5)
    # bf16 inputs: as close as the bf16 convolution is (same inputs, same rounding scale)
    low = one_channel_conv3d(x.bfloat16(), weight.bfloat16())
    conv_low = F.conv3d(x.bfloat16(), weight.bfloat16(), padding=1).float()
    assert low.dtype == torch.float32
    assert (low - expected).abs().mean() <= 2 * (conv_low - expected).abs().mean()


def test_one_channel_conv_keeps_the_convolution_for_training_and_export():
    conv = OneChannelConv3d(4)
    x = torch.randn(1, 4, 3, 4, 5, requires_grad=True)
    conv(x).sum().backward()  # with autograd: the convolution (and its gradients)
    assert x.grad is not None and conv.weight.grad is not None
    with torch.no_grad():
        decomposed = conv(x)
        conv.decomposed = False
        plain = conv(x)
    torch.testing.assert_close(decomposed, plain, atol=1e-5, rtol=1e-5)


def test_eager_inference_path_matches_the_plain_forward():
    """No autograd (decomposed one-channel convs, in-place sums) vs autograd (plain convs)."""
    torch.manual_seed(3)
    model = _calibrated(PSMNet(max_disparity=32, blocks=(1, 1, 1, 1))).eval()
    left, right = torch.randn(1, 3, 64, 96), torch.randn(1, 3, 64, 96)
    plain = model(left, right)["disparity"].detach()
    with torch.no_grad():
        eager = model(left, right)["disparity"]
    torch.testing.assert_close(eager, plain, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("align_corners", [False, True])
def test_precise_regression_on_odd_sizes_and_batches(align_corners):
    torch.manual_seed(1)
    cost = 5 * torch.randn(2, 1, 5, 7, 9)
    size = (29, 35)  # not 4x the cost: every row and column takes its own weights
    exact = disparity_regression(cost.double(), 20, size, align_corners)
    for chunk in (None, 1, 3, 7):
        ours = precise_disparity_regression(cost, 20, size, align_corners, row_chunk=chunk)
        torch.testing.assert_close(ours.double(), exact, atol=1e-4, rtol=0)


def _trilinear_regression(cost, max_disparity, size, align_corners):
    """The published code's form: one trilinear upsampling, softmax over D, soft-argmin."""
    full = F.interpolate(cost, (max_disparity, *size), mode="trilinear",
                         align_corners=align_corners).squeeze(1)
    return torch.einsum("bdhw,d->bhw", F.softmax(full, dim=1),
                        torch.arange(max_disparity, dtype=cost.dtype))


@pytest.mark.parametrize("align_corners", [False, True])
def test_the_training_regression_is_the_published_trilinear_one(align_corners):
    """Training's separable upsampling (matrix products, fast gradients) gives the trilinear
    form's disparities and gradients."""
    torch.manual_seed(0)
    cost = (5 * torch.randn(2, 1, 12, 16, 32, dtype=torch.float64)).requires_grad_()
    ours = disparity_regression(cost, 48, (64, 128), align_corners)
    theirs = _trilinear_regression(cost, 48, (64, 128), align_corners)
    # the interpolation weights are fp32 (exact fractions rounded once): measured 4.7e-6 px
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=0)
    torch.testing.assert_close(*(torch.autograd.grad(out.sum(), cost)[0]
                                 for out in (ours, theirs)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("align_corners", [False, True])
def test_the_training_regression_in_chunks_on_odd_sizes(align_corners):
    """Any chunk of rows, odd sizes (every row and column its own weights), batch 2: the
    trilinear form's disparities and gradients, in fp64."""
    torch.manual_seed(2)
    cost = (5 * torch.randn(2, 1, 5, 7, 9, dtype=torch.float64)).requires_grad_()
    size = (29, 35)
    theirs = _trilinear_regression(cost, 20, size, align_corners)
    weights = torch.randn_like(theirs)  # a loss that weighs every pixel differently
    expected = torch.autograd.grad((theirs * weights).sum(), cost)[0]
    for chunk in (1, 3, 8, 29, 64):
        ours = disparity_regression(cost, 20, size, align_corners, row_chunk=chunk)
        torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=0)
        torch.testing.assert_close(torch.autograd.grad((ours * weights).sum(), cost)[0],
                                   expected, atol=1e-5, rtol=0)


def test_the_soft_argmin_backward_is_fp32_under_autocast_and_chunks_are_checked():
    """SoftArgminRows' backward pass called inside a bf16 autocast block (a notebook's habit)
    gives the fp32 gradients, and a chunk of rows that is not a positive integer is refused."""
    from cnnlab.stereo.models.psmnet import SoftArgminRows, _linear_matrix

    torch.manual_seed(3)
    volume = torch.randn(2, 6, 8, 16, requires_grad=True)  # (B, D/4, H/4, W/4)
    matrices = [_linear_matrix(n, 4 * n, False, volume) for n in (16, 6, 8)]  # W, D, H
    weights = torch.randn(2, 32, 64)
    plain = torch.autograd.grad((SoftArgminRows.apply(volume, *matrices, False, 8) * weights)
                                .sum(), volume)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = SoftArgminRows.apply(volume, *matrices, False, 8)
        inside = torch.autograd.grad((out * weights).sum(), volume)[0]
    assert out.dtype == torch.float32
    torch.testing.assert_close(inside, plain, atol=0, rtol=0)
    cost = torch.randn(2, 1, 6, 8, 16)
    for chunk in (0, -2, 2.5):
        with pytest.raises(ValueError, match="row_chunk must be a positive integer"):
            disparity_regression(cost, 24, (32, 64), False, row_chunk=chunk)


def test_the_training_regression_keeps_no_full_resolution_volume():
    """What autograd keeps for the backward pass is at most the (B, D/4, H/4, W/4) cost: the
    (B, H/4, W, D) volume and the (B, H, W, D) softmax (50 and 200 MB per output at 256x512,
    batch 2) are remade in backward."""
    cost = torch.randn(2, 1, 12, 16, 32, requires_grad=True)
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = disparity_regression(cost, 48, (64, 128), False)
    assert out.shape == (2, 64, 128) and sizes
    matrices = 128 * 32 + 48 * 12 + 64 * 16  # W, D and H interpolation
    assert sum(sizes) == cost.numel() + out.numel() + matrices < 2 * 16 * 128 * 48


@pytest.mark.parametrize("align_corners", [False, True])
def test_precise_regression_matches_trilinear_closer_to_exact(align_corners):
    """Separable with exact (integer-fraction) coordinates, chunked or not: the published
    trilinear form's answer, nearer to an fp64 computation than fp32 trilinear is."""
    torch.manual_seed(0)
    cost = 30 * torch.randn(1, 1, 48, 8, 312)  # KITTI's width, a sharp softmax
    size = (32, 1248)
    exact = disparity_regression(cost.double(), 192, size, align_corners)
    published = _trilinear_regression(cost, 192, size, align_corners)
    whole = precise_disparity_regression(cost, 192, size, align_corners)
    chunked = precise_disparity_regression(cost, 192, size, align_corners, row_chunk=5)
    # fp32 rounding only (the products sum in another order): measured 2.4e-4 px apart
    torch.testing.assert_close(chunked, whole, atol=5e-4, rtol=0)
    # measured: 3.7e-4 / 2.9e-4 px (fp32 trilinear: 0.056 / 3.2e-4) with / without corners
    for ours in (whole, chunked):
        assert (ours.double() - exact).abs().max() <= 1e-3
        assert (ours.double() - exact).abs().max() <= (published.double() - exact).abs().max()


def test_loss_masks_and_weights():
    target = torch.tensor([[0.0, 5.0, 20.0, float("inf")]])
    mask = valid_mask(target, max_disparity=16)
    assert mask.tolist() == [[False, True, False, False]]
    outputs = [torch.full_like(target, v) for v in (6.0, 7.0, 5.0)]
    # smooth L1 of errors 1, 2, 0 at the one valid pixel: 0.5, 1.5, 0
    assert disparity_loss(outputs, target, mask).item() == pytest.approx(0.5 * 0.5 + 0.7 * 1.5)
    assert disparity_loss(outputs, target, torch.zeros_like(mask)).item() == 0.0


def test_one_pair_overfit_loss_falls():
    from cnnlab.stereo.data.synthetic import render_pair

    torch.manual_seed(0)
    pair = render_pair(32, 64, 12.0, seed=1, noise=0.0, use_photos=False)
    left, right = (pair.left.unsqueeze(0) - 0.5) / 0.25, (pair.right.unsqueeze(0) - 0.5) / 0.25
    target = pair.disparity.unsqueeze(0)
    mask = valid_mask(target, 16) & pair.noc.unsqueeze(0)
    model = PSMNet(**TINY).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss = disparity_loss(model(left, right)["disparities"], target, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_cost_volume_memory_format_keeps_values():
    left, right = torch.randn(1, 3, 4, 9), torch.randn(1, 3, 4, 9)
    volume = build_concat_volume(left, right, 5, torch.channels_last_3d)
    assert volume.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(volume, build_concat_volume_loop(left, right, 5))


def test_checkpoints_with_the_older_module_names_load():
    """Runs saved before the modules were renamed load into today's PSMNet with the same
    tensors (key names as cnnlab <= 0.1.0 wrote them, listed literally)."""
    renamed = {"feature_extraction.firstconv.0.conv.weight": "features.stem.0.conv.weight",
               "feature_extraction.layer1.0.conv1.0.bn.running_mean":
                   "features.layer1.0.conv1.0.bn.running_mean",
               "feature_extraction.spp.branches.2.0.conv.weight":
                   "features.spp.branches.2.0.conv.weight",
               "feature_extraction.lastconv.2.weight": "features.fusion.2.weight",
               "dres0.0.bn.bias": "cost_stem.0.bn.bias",
               "dres1.2.conv.weight": "cost_residual.2.conv.weight"}
    model = PSMNet(**TINY)
    state = {k: v.clone() + 1 for k, v in model.state_dict().items()}
    older = dict(state)
    for old, new in renamed.items():
        older[old] = older.pop(new)
    assert not any(k.startswith(("feature_extraction.", "dres0.", "dres1."))
                   for k in model.state_dict())
    fresh = PSMNet(**TINY)
    fresh.load_state_dict(older)  # strict: every key found
    assert all(torch.equal(fresh.state_dict()[k], state[k]) for k in state)


@pytest.mark.slow  # about 15 s
def test_export_keeps_height_and_width_dynamic():
    """With the cost volume stacked rather than slice-assigned, torch.export traces PSMNet once
    for a range of sizes (multiples of 16 within one SPP regime: the 64-pool sees one row and
    at least two columns) and answers exactly as eager does at other sizes."""
    torch.manual_seed(0)
    model = PSMNet(**TINY).eval()
    model.row_chunk = None  # the chunk loop runs a Python loop over the height
    rows = torch.export.Dim("rows", min=16, max=31)
    columns = torch.export.Dim("columns", min=32, max=128)
    shapes = {2: 16 * rows, 3: 16 * columns}
    example = (torch.randn(1, 3, 256, 512), torch.randn(1, 3, 256, 512))  # two tensors: one
    # passed twice would be traced as the same input
    with torch.no_grad():
        exported = torch.export.export(model, example, dynamic_shapes=(shapes, shapes)).module()
        for size in ((320, 640), (256, 1024)):
            left, right = torch.randn(1, 3, *size), torch.randn(1, 3, *size)
            expected = model(left, right)["disparity"]
            assert torch.equal(exported(left, right)["disparity"], expected), size


def test_training_soft_argmin_is_not_rounded_under_bf16_autocast():
    """--amp: autocast makes the upsampling bf16, but the weighted sum stays fp32, so a
    disparity near 100 px is not rounded to bf16's 0.5 px steps."""
    torch.manual_seed(0)
    cost = torch.randn(1, 1, 48, 4, 8)
    cost[:, :, 25] += 40  # a confident peak near 100 px
    exact = disparity_regression(cost, 192, (16, 32), True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = disparity_regression(cost, 192, (16, 32), True)
    assert low.dtype == torch.float32
    # measured 0.0 (a bf16 weighted sum was 0.40 px off)
    assert (low - exact).abs().max() < 0.05
