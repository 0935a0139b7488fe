"""Exercise checkers: a correct student implementation passes, each common mistake is named."""

import pytest
import torch
import torch.nn.functional as F
from tests.conftest import SHARED_DATA, SHARED_WEIGHTS, shared_path, shared_weights
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.exercises import (
    CheckResult,
    check_corr2d,
    check_hourglass,
    check_pool2d,
    check_residual_block,
    check_spp,
)

# ------------------------------------------------------------------ student code, as in d2l


def corr2d(X, K):
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y


def corr2d_flipped(X, K):
    return corr2d(X, torch.flip(K, (0, 1)))


def corr2d_padded(X, K):
    return corr2d(F.pad(X, (1, 1, 1, 1)), K)


def corr2d_raises(X, K):
    if K.shape[0] != K.shape[1]:
        raise ValueError("square kernels only")
    return corr2d(X, K)


def pool2d(X, pool_size, mode="max"):
    p_h, p_w = pool_size
    Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            window = X[i:i + p_h, j:j + p_w]
            Y[i, j] = window.max() if mode == "max" else window.mean()
    return Y


def pool2d_always_max(X, pool_size, mode="max"):
    return pool2d(X, pool_size, "max")


def pool2d_sum(X, pool_size, mode="max"):
    if mode == "max":
        return pool2d(X, pool_size, "max")
    return pool2d(X, pool_size, "avg") * pool_size[0] * pool_size[1]


class Residual(nn.Module):
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        # another order than d2l's (conv1, conv2, conv3, bn1, bn2) and other names
        self.first = nn.Conv2d(input_channels, num_channels, 3, padding=1, stride=strides)
        self.first_bn = nn.BatchNorm2d(num_channels)
        self.second = nn.Conv2d(num_channels, num_channels, 3, padding=1)
        self.second_bn = nn.BatchNorm2d(num_channels)
        self.project = (nn.Conv2d(input_channels, num_channels, 1, stride=strides)
                        if use_1x1conv else None)

    def body(self, X):
        return self.second_bn(self.second(F.relu(self.first_bn(self.first(X)))))

    def shortcut(self, X):
        return self.project(X) if self.project is not None else X

    def forward(self, X):
        return F.relu(self.body(X) + self.shortcut(X))


class ResidualNoAdd(Residual):
    def forward(self, X):
        return F.relu(self.body(X))


class ResidualNoFinalReLU(Residual):
    def forward(self, X):
        return self.body(X) + self.shortcut(X)


class ResidualNoProjection(Residual):
    def forward(self, X):
        return F.relu(self.body(X) + X)


class SPP(nn.Module):
    def __init__(self, channels, branch_channels, pools, align_corners):
        super().__init__()
        self.pools, self.align_corners = pools, align_corners
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, branch_channels, 1, bias=False),
                          nn.BatchNorm2d(branch_channels), nn.ReLU()) for _ in pools)

    def pool(self, x, window):
        return F.avg_pool2d(x, window)

    def upsample(self, x, size):
        return F.interpolate(x, size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, x):
        h, w = x.shape[-2:]
        return [self.upsample(branch(self.pool(x, (min(p, h), min(p, w)))), (h, w))
                for p, branch in zip(self.pools, self.branches)]


class SPPMaxPool(SPP):
    def pool(self, x, window):
        return F.max_pool2d(x, window)


class SPPNearest(SPP):
    def upsample(self, x, size):
        return F.interpolate(x, size, mode="nearest")


def convbn3d(n_in, n_out, stride=1):
    return nn.Sequential(nn.Conv3d(n_in, n_out, 3, stride, 1, bias=False), nn.BatchNorm3d(n_out))


def deconvbn3d(n_in, n_out):
    return nn.Sequential(nn.ConvTranspose3d(n_in, n_out, 3, 2, 1, output_padding=1, bias=False),
                         nn.BatchNorm3d(n_out))


class Hourglass(nn.Module):
    def __init__(self, channels):
        super().__init__()
        wide = 2 * channels
        self.down1 = nn.Sequential(convbn3d(channels, wide, 2), nn.ReLU())
        self.down2 = convbn3d(wide, wide)
        self.down3 = nn.Sequential(convbn3d(wide, wide, 2), nn.ReLU())
        self.down4 = nn.Sequential(convbn3d(wide, wide), nn.ReLU())
        self.up5 = deconvbn3d(wide, wide)
        self.up6 = deconvbn3d(wide, channels)

    def pre(self, x, postsqu):
        pre = self.down2(self.down1(x))
        return F.relu(pre + postsqu if postsqu is not None else pre)

    def forward(self, x, presqu, postsqu):
        pre = self.pre(x, postsqu)
        out = self.down4(self.down3(pre))
        post = F.relu(self.up5(out) + (presqu if presqu is not None else pre))
        return self.up6(post), pre, post


class HourglassIgnoringPostsqu(Hourglass):
    def pre(self, x, postsqu):
        return F.relu(self.down2(self.down1(x)))


def assert_failed(result: CheckResult, *words: str) -> None:
    assert not result and not result.passed, str(result)
    for word in words:
        assert word in result.message, str(result)
    assert any(step.startswith("FAILED: ") for step in result.steps)


# ------------------------------------------------------------------------- corr2d, pool2d


def test_corr2d_correct_passes():
    result = check_corr2d(corr2d)
    assert result and result.message == "all checks passed", str(result)
    assert all(step.startswith("ok: ") for step in result.steps)
    assert "check_corr2d: passed" in str(result)
    assert "✅" in result._repr_markdown_()


def test_corr2d_flipped_kernel_is_named():
    assert_failed(check_corr2d(corr2d_flipped), "wrong values", "kernel is flipped",
                  "true convolution")


def test_corr2d_padding_is_named_with_the_sizes():
    result = check_corr2d(corr2d_padded)
    assert_failed(result, "wrong size", "expected (4, 4), got (6, 6)", "padding 1")
    assert result.steps == [f"FAILED: {result.message}"]  # shapes first, values not reached


def test_corr2d_exception_in_student_code_is_reported_with_its_input():
    assert_failed(check_corr2d(corr2d_raises), "ValueError: square kernels only",
                  "corr2d(X (5, 6), K (2, 3))")


def test_pool2d_correct_passes():
    result = check_pool2d(pool2d)
    assert result, str(result)
    assert any("defaults to 'max'" in step for step in result.steps)


def test_pool2d_avg_computed_as_max_is_named():
    assert_failed(check_pool2d(pool2d_always_max), "mode='avg'", "avg computed as max")


def test_pool2d_sum_instead_of_mean_is_named():
    assert_failed(check_pool2d(pool2d_sum), "sum instead of mean")


def test_misuse_raises_config_error():
    with pytest.raises(ConfigError, match="expected the class"):
        check_residual_block(Residual(3, 3))
    with pytest.raises(ConfigError, match="expected a function"):
        check_corr2d(Residual)
    with pytest.raises(ConfigError, match="nn.Module subclass"):
        check_spp(corr2d)


# ---------------------------------------------------------------------------- residual block


def test_residual_block_correct_passes_whatever_its_names_and_order():
    result = check_residual_block(Residual)
    assert result, str(result)
    assert "convs, then norms" in result.steps[-1]


def test_residual_block_without_the_addition_is_named():
    assert_failed(check_residual_block(ResidualNoAdd), "missing residual addition")


def test_residual_block_without_the_final_relu_is_named():
    assert_failed(check_residual_block(ResidualNoFinalReLU), "ReLU after the sum missing")


def test_residual_block_ignoring_the_projection_is_named():
    assert_failed(check_residual_block(ResidualNoProjection),
                  "projection shortcut not used when shapes change")


def test_residual_block_weights_that_do_not_fit_name_the_parameter():
    class NoBias(Residual):
        def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
            super().__init__(input_channels, num_channels, use_1x1conv, strides)
            self.first = nn.Conv2d(input_channels, num_channels, 3, padding=1, stride=strides,
                                   bias=False)

    assert_failed(check_residual_block(NoBias), "weights by order", "has 7 parameter tensors",
                  "has 8", "missing from your NoBias(3, 3, use_1x1conv=False, strides=1): the "
                  "reference's 'conv1.bias' (3,)")


# ------------------------------------------------------------------------------- SPP


def test_spp_correct_passes_without_the_drop_in():
    result = check_spp(SPP, drop_in=False)
    assert result, str(result)
    assert len(result.steps) == 3 and "align_corners=False" in result.steps[2]


def test_spp_max_pooling_is_named():
    assert_failed(check_spp(SPPMaxPool, drop_in=False), "pool 64 (branch 0)",
                  "max pooling instead of average pooling")


def test_spp_nearest_upsampling_is_named():
    assert_failed(check_spp(SPPNearest, drop_in=False), "pool 32 (branch 1)",
                  "nearest instead of bilinear upsampling")


def test_spp_drop_in_is_skipped_with_directions_when_the_weights_are_missing(
        isolated_roots, tmp_path):
    result = check_spp(SPP, weights_root=tmp_path / "none", data_root=tmp_path)
    assert result, str(result)
    skipped = result.steps[-1]
    assert skipped.startswith("skipped: drop-in"), skipped
    assert "pretrained_model_KITTI2015.tar not found" in skipped
    assert "drive.google.com" in skipped and "weights_root=" in skipped


# ------------------------------------------------------------------------------- Hourglass


def test_hourglass_correct_passes_without_the_drop_in():
    result = check_hourglass(Hourglass, drop_in=False)
    assert result, str(result)


def test_hourglass_ignoring_postsqu_is_named():
    assert_failed(check_hourglass(HourglassIgnoringPostsqu, drop_in=False),
                  "presqu", "out, pre and post differ", "postsqu ignored")


# ------------------------------------------------------------ drop-in with the official weights


@pytest.fixture
def real_roots():
    shared_weights("PSMNet", "pretrained_model_KITTI2015.tar")
    shared_path("KITTI2015", "training", "image_2", "000000_10.png")
    return {"weights_root": SHARED_WEIGHTS, "data_root": SHARED_DATA}


def test_spp_drop_in_matches_the_official_epe(real_roots):
    result = check_spp(SPP, **real_roots)
    assert result, str(result)
    assert result.steps[-1].startswith("ok: drop-in as features.spp")
    assert result.figures["epe_official"] == pytest.approx(0.3221, abs=1e-3)
    assert abs(result.figures["epe_yours"] - result.figures["epe_official"]) <= 1e-3


def test_spp_drop_in_with_max_pooling_names_the_spp(real_roots):
    result = check_spp(SPPMaxPool, **real_roots)
    assert_failed(result, "max pooling")  # the values step fails first
    drop_in = result.steps[-1]
    assert drop_in.startswith("FAILED: drop-in"), drop_in
    assert ("first module whose output differs: features.spp: branch 0 (pool 64) differs"
            in drop_in)
    assert result.figures["epe_yours"] > result.figures["epe_official"] + 1e-3


def test_hourglass_drop_in_matches_the_official_epe(real_roots):
    result = check_hourglass(Hourglass, **real_roots)
    assert result, str(result)
    assert abs(result.figures["epe_yours"] - result.figures["epe_official"]) <= 1e-3


def test_hourglass_drop_in_ignoring_postsqu_names_the_second_hourglass(real_roots):
    result = check_hourglass(HourglassIgnoringPostsqu, **real_roots)
    drop_in = result.steps[-1]
    assert drop_in.startswith("FAILED: drop-in"), drop_in
    assert "first module whose output differs: hourglasses.1: out differs" in drop_in
    assert "; pre, post too" in drop_in
