"""Tiled inference equals whole-image inference wherever tiling.py guarantees it.

What ``stereo.tiling`` guarantees: the kept regions partition the image, and each tile's crop
holds its kept region widened by the margin on every side and, on the left, by the disparity
range too (clipped at the image's edges). So a network whose output at a pixel depends only on
the left view within ``margin`` of it and the right view from ``x - range - margin`` to
``x + margin`` gives, tiled, exactly its whole-image output. PSMNet's receptive field is far
wider than the 64 px margin (SPP pools, three hourglasses at 1/16 resolution): its tiles
legitimately differ near seams, so the exact checks use a stub with exactly that receptive
field (and its coordinates as a second output, so a paste offset cannot hide), and the real
network is checked with a local variant and a margin wider than its receptive field.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.stereo.inference.methods import scaled_outputs
from cnnlab.stereo.inference.tiling import TILE_MARGIN, plan_tiles, tiled_forward
from cnnlab.stereo.models import create_model


def window_sum(x: torch.Tensor, up: int, down: int, left: int, right: int) -> torch.Tensor:
    """(B, H, W) -> (B, H, W): the sum of x over rows y-up..y+down and columns x-left..x+right,
    zero outside the image (float64: exact for integer values)."""
    padded = F.pad(x.double(), (left, right, up, down))
    table = F.pad(padded.cumsum(-2).cumsum(-1), (1, 0, 1, 0))
    kh, kw = up + down + 1, left + right + 1
    return (table[..., kh:, kw:] - table[..., :-kh, kw:] - table[..., kh:, :-kw]
            + table[..., :-kh, :-kw])


class ReceptiveFieldStub(nn.Module):
    """A stereo "network" whose disparity at (y, x) sums the left view's channel 0 over
    [y-m, y+m] x [x-m, x+m] and the right view's over [y-m, y+m] x [x-D-m, x+m]: exactly
    the context tiling promises (m = margin + ``reach``; reach 1 asks for a pixel more). Its
    confidence is the left view's channel 1, a pixel's coordinate code."""

    def __init__(self, max_disparity: int, margin: int = TILE_MARGIN, reach: int = 0):
        super().__init__()
        self.max_disparity, self.margin, self.reach = max_disparity, margin, reach
        self.confidence_radius = None
        self.calls = 0

    def set_max_disparity(self, max_disparity: int):
        self.max_disparity = max_disparity
        return self

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict:
        self.calls += 1
        m, d = self.margin + self.reach, self.max_disparity
        disparity = window_sum(left[:, 0], m, m, m, m) + window_sum(right[:, 0], m, m, m + d, m)
        return {"disparity": disparity.float(), "confidence": left[:, 1].clone(),
                "disparities": [disparity.float()]}


def _coded_pair(batch: int, height: int, width: int, seed: int = 0):
    """Integer-valued views (sums stay exact in float32); left channel 1 = y * width + x."""
    generator = torch.Generator().manual_seed(seed)
    left = torch.randint(0, 10, (batch, 3, height, width), generator=generator).float()
    right = torch.randint(0, 10, (batch, 3, height, width), generator=generator).float()
    code = torch.arange(height * width, dtype=torch.float32).view(height, width)
    left[:, 1] = code
    return left, right, code


@pytest.mark.parametrize(("height", "width", "tile"), [
    (330, 530, (200, 240)),  # tiles in both directions
    (100, 530, (200, 240)),  # full-height tiles (the height fits)
    (330, 150, (200, 240)),  # full-width strips (the width fits)
])
def test_tiles_partition_the_image_and_hold_their_margins(height, width, tile):
    max_disparity, margin = 16, TILE_MARGIN
    tiles = plan_tiles(height, width, tile, max_disparity, margin)
    assert len(tiles) >= 2
    cover = torch.zeros(height, width, dtype=torch.int64)
    for part in tiles:
        y0, y1, x0, x1 = part.keep
        cy0, cy1, cx0, cx1 = part.crop
        cover[y0:y1, x0:x1] += 1
        assert cy1 - cy0 <= tile[0] and cx1 - cx0 <= tile[1], part
        assert cy0 == max(0, y0 - margin) and cy1 == min(height, y1 + margin), part
        assert cx0 == max(0, x0 - max_disparity - margin), part
        assert cx1 == min(width, x1 + margin), part
    assert torch.equal(cover, torch.ones_like(cover))  # each pixel from exactly one tile


def test_stub_tiled_equals_whole_image_exactly():
    """Several tiles in both directions, batch 2: the tiled disparity equals the whole-image one
    bit for bit (every tile had its full context), and the confidence pasted from each tile is
    each pixel's own coordinate (no offset error)."""
    height, width, tile = 260, 420, (220, 300)
    left, right, code = _coded_pair(2, height, width)
    stub = ReceptiveFieldStub(16)
    with torch.no_grad():
        whole = stub(left, right)
        stub.calls = 0
        tiled = tiled_forward(stub, left, right, tile)
    assert stub.calls == len(plan_tiles(height, width, tile, 16)) == 9  # 3 x 3
    assert torch.equal(tiled["confidence"], code.expand(2, -1, -1))
    assert torch.equal(tiled["disparity"], whole["disparity"])
    # the check has teeth: a network reaching one pixel beyond the margin sees the seams
    wider = ReceptiveFieldStub(16, reach=1)
    with torch.no_grad():
        assert not torch.equal(tiled_forward(wider, left, right, tile)["disparity"],
                               wider(left, right)["disparity"])


def test_public_inference_path_with_a_tile_equals_the_whole_image():
    """``scaled_outputs(tile=...)``, what predict and eval call: the range the model searches
    is the caller's (rounded to 16), and the tiled outputs are the whole-image ones."""
    height, width, tile = 150, 300, (200, 220)
    left, right, code = _coded_pair(1, height, width, seed=1)
    stub = ReceptiveFieldStub(48)
    whole = scaled_outputs(stub, left, right, full_range=30, confidence=1.0)
    tiled = scaled_outputs(stub, left, right, full_range=30, confidence=1.0, tile=tile)
    assert stub.max_disparity == 48  # restored after the call
    assert len(plan_tiles(height, width, tile, 32)) >= 2
    assert torch.equal(tiled["confidence"], code[None])
    assert torch.equal(tiled["disparity"], whole["disparity"])


def test_local_psmnet_tiled_equals_whole_image():
    """The real network, made local (basic variant, one 1x1 SPP pool, align_corners False: no
    hourglass at 1/16 and no global pooling; its receptive field is about 92 px each side of
    a pixel) with a 96 px margin: three tiles give the whole-image disparity (measured: bit
    for bit). The crops start at multiples of 16 here, so the stride-4 feature grid and the
    x4 upsampling line up with the whole image's."""
    torch.manual_seed(0)
    model = create_model("psmnet", variant="basic", max_disparity=16, blocks=(1, 1, 1, 1),
                         spp_pools=(1,), align_corners=False)
    generator = torch.Generator().manual_seed(1)
    height, width, tile, margin = 64, 384, (64, 336), 96
    left = torch.randn(1, 3, height, width, generator=generator)
    right = torch.randn(1, 3, height, width, generator=generator)
    for module in model.modules():  # calibrate BN on a part of the pair: one batch's statistics
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    with torch.no_grad():
        model.train()(left[..., :128], right[..., :128])
        model.eval()
        whole = model(left, right)["disparity"]
        tiled = tiled_forward(model, left, right, tile, margin)["disparity"]
    parts = plan_tiles(height, width, tile, 16, margin)
    assert len(parts) == 3 and all(p.crop[2] % 16 == 0 for p in parts), parts
    assert whole.std() > 1  # not a flat answer that any paste would reproduce
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)
