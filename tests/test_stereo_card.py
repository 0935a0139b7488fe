"""``align_corners`` belongs to the weights: the model card carries it, and every path from a
card to a network (the card builder, ``load_model`` on a checkpoint, a load-time override,
training's card and model) must give a network whose upsampling uses the card's value.

Checked by behaviour, not attribute names, so a relayout cannot pass by renaming: the
``align_corners`` of every ``F.interpolate`` call a training-mode forward makes (SPP branches
and the three regressions), and the eval-mode output against a network built directly with
the value (and not the other one).
"""

import pytest
import torch
import torch.nn.functional as F

from cnnlab.engine.checkpoint import save_checkpoint
from cnnlab.engine.config import OptimConfig
from cnnlab.stereo.models import PSMNet, PSMNetConfig
from cnnlab.stereo.training.lab import STEREO, StereoConfig, stereo_run
from cnnlab.stereo.weights.card import build_stereo_model, psmnet_card
from cnnlab.stereo.weights.registry import load_model

TINY = {"max_disparity": 16, "blocks": (1, 1, 1, 1)}
SIZE = (32, 64)


def _pair(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 3, *SIZE, generator=generator),
            torch.randn(1, 3, *SIZE, generator=generator))


def interpolation_flags(model: torch.nn.Module, monkeypatch) -> list:
    """The align_corners argument of every resize of one training-mode forward: each
    F.interpolate call (the SPP branches) and each interpolation matrix (the regression's
    axis-by-axis upsampling)."""
    from cnnlab.stereo.models import psmnet

    seen = []
    real, real_matrix = F.interpolate, psmnet._linear_matrix

    def spy(*args, **kwargs):
        seen.append(kwargs.get("align_corners"))
        return real(*args, **kwargs)

    def matrix_spy(in_size, out_size, align_corners, like):
        seen.append(align_corners)
        return real_matrix(in_size, out_size, align_corners, like)

    was_training = model.training
    with monkeypatch.context() as patch:
        patch.setattr(torch.nn.functional, "interpolate", spy)
        patch.setattr(psmnet, "_linear_matrix", matrix_spy)
        model.train()
        with torch.no_grad():
            model(*_pair())
    model.train(was_training)
    return seen


def reference_output(state: dict, align_corners: bool, fused: bool) -> torch.Tensor:
    """The eval disparity of a PSMNet built directly with ``align_corners`` and the weights
    ``state`` (fused as the model checked is)."""
    reference = PSMNet(PSMNetConfig(**TINY, align_corners=align_corners))
    reference.load_state_dict(state)
    reference.eval()
    if fused:
        reference.fuse_for_inference()
    with torch.no_grad():
        return reference(*_pair(1))["disparity"]


def regressed_by_hand(model: torch.nn.Module, align_corners: bool) -> torch.Tensor:
    """The eval disparity as the published code computes it from ``model``'s final cost
    (trilinear upsampling with ``align_corners``, softmax, soft-argmin, in fp64): independent
    of how the model's own inference regression gets the flag."""
    left, right = (x.contiguous(memory_format=torch.channels_last) for x in _pair(1))
    with torch.no_grad():
        cost = model.aggregate_costs(model.features(left), model.features(right))[-1]
    full = F.interpolate(cost.double(), (TINY["max_disparity"], *SIZE), mode="trilinear",
                         align_corners=align_corners).squeeze(1)
    levels = torch.arange(TINY["max_disparity"], dtype=torch.float64).view(1, -1, 1, 1)
    return (torch.softmax(full, dim=1) * levels).sum(1)


def assert_uses(model: torch.nn.Module, align_corners: bool, monkeypatch,
                state: dict | None = None, fused: bool = False) -> None:
    """``model`` (whose weights are ``state``, default its own) upsamples with
    ``align_corners``."""
    state = state if state is not None else model.state_dict()
    model.eval()
    with torch.no_grad():
        output = model(*_pair(1))["disparity"]
    assert torch.equal(output, reference_output(state, align_corners, fused))
    assert not torch.equal(output, reference_output(state, not align_corners, fused))
    # the regression at inference, against the published form (measured: 7e-6 px apart; the
    # other align_corners: up to 8.6 px)
    torch.testing.assert_close(output.double(), regressed_by_hand(model, align_corners),
                               atol=1e-3, rtol=0)
    assert (output.double() - regressed_by_hand(model, not align_corners)).abs().max() > 0.01
    flags = interpolation_flags(model, monkeypatch)
    # 4 SPP branches per view (2 views), and 3 axes per hourglass output's regression (3)
    assert len(flags) >= 4 * 2 + 3 * 3, flags
    assert set(flags) == {align_corners}, flags


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Give BN running statistics (one training batch) so eval outputs are not degenerate."""
    model.train()
    with torch.no_grad():
        model(*_pair(2))
    return model.eval()


@pytest.mark.parametrize("align_corners", [False, True])
def test_card_builds_a_network_with_its_align_corners(align_corners, monkeypatch):
    card = psmnet_card(PSMNetConfig(**TINY, align_corners=align_corners))
    assert card.kwargs["align_corners"] is align_corners
    torch.manual_seed(0)
    assert_uses(_trained_like(build_stereo_model(card)), align_corners, monkeypatch)


@pytest.mark.parametrize("align_corners", [False, True])
def test_load_model_follows_the_checkpoints_card_and_an_override(align_corners, tmp_path,
                                                                   monkeypatch):
    card = psmnet_card(PSMNetConfig(**TINY, align_corners=align_corners))
    torch.manual_seed(0)
    network = _trained_like(build_stereo_model(card))
    path = save_checkpoint(tmp_path / "weights.safetensors", network.state_dict(),
                           {"card": card.to_dict()})
    model, loaded = load_model(path)
    assert loaded.kwargs["align_corners"] is align_corners
    assert_uses(model, align_corners, monkeypatch, network.state_dict(), fused=True)
    # the load-time override (--align-corners) wins over the card, and the card says so
    model, loaded = load_model(path, overrides={"align_corners": not align_corners})
    assert loaded.kwargs["align_corners"] is (not align_corners)
    assert any("overridden at load time" in note for note in loaded.notes)
    assert_uses(model, not align_corners, monkeypatch, network.state_dict(), fused=True)


@pytest.mark.parametrize("align_corners", [False, True])
def test_training_builds_the_network_its_card_describes(align_corners, monkeypatch):
    config = StereoConfig(**TINY, align_corners=align_corners)
    run, start = STEREO.resolve(stereo_run(config, OptimConfig()), False, print)
    card = STEREO.card(run)
    assert start is None and card.kwargs["align_corners"] is align_corners
    torch.manual_seed(0)
    model = _trained_like(STEREO.build_model(card, start, print))
    assert_uses(model, align_corners, monkeypatch)
