"""The concatenation cost volume against its definition, written here as a plain loop over
disparities and columns, independently of every implementation the project has.

Definition (the published PSMNet's): at disparity d and column x the volume holds the left
features at x and the right features at x - d, where x >= d; elsewhere both halves are zero.
"""

import inspect

import pytest
import torch

from cnnlab.stereo.models import cost_volume, create_model


def definition(left: torch.Tensor, right: torch.Tensor, levels: int) -> torch.Tensor:
    b, c, h, w = left.shape
    volume = torch.full((b, 2 * c, levels, h, w), float("nan"))
    for d in range(levels):
        for x in range(w):
            if x >= d:
                volume[:, :c, d, :, x] = left[:, :, :, x]
                volume[:, c:, d, :, x] = right[:, :, :, x - d]
            else:
                volume[:, :, d, :, x] = 0.0
    assert not volume.isnan().any()  # every cell was written
    return volume


def _module_implementations() -> dict:
    """Every function of the cost-volume module that builds a volume (a new or renamed one is
    checked too): (left, right, levels) -> volume."""
    found = {name: function for name, function in inspect.getmembers(cost_volume,
                                                                     inspect.isfunction)
             if "volume" in name and function.__module__ == cost_volume.__name__}
    # the two the project has today; a relayout must keep (or rename) them, not lose them
    assert len(found) >= 2, found
    return found


def implementations() -> dict:
    found = dict(_module_implementations())
    channels_last = found.get("build_concat_volume")
    if channels_last is not None:
        found["build_concat_volume(channels_last_3d)"] = (
            lambda left, right, levels: channels_last(left, right, levels,
                                                      torch.channels_last_3d))

    def model_method(left, right, levels):
        """What PSMNet itself builds (its range is 4x the feature levels)."""
        model = create_model("psmnet", max_disparity=4 * levels, blocks=(1, 1, 1, 1))
        return model.build_cost_volume(left, right)

    found["PSMNet.build_cost_volume"] = model_method
    return found


@pytest.mark.parametrize("name", sorted(implementations()))
@pytest.mark.parametrize(("b", "c", "h", "w", "levels"), [  # levels: multiples of 4 (PSMNet's)
    (1, 1, 1, 9, 4),  # one channel, one row
    (2, 3, 4, 11, 8),  # batch and channels keep their own values
    (1, 2, 3, 5, 8),  # more levels than columns: the last planes are all zero
])
def test_every_cost_volume_equals_the_definition(name, b, c, h, w, levels):
    generator = torch.Generator().manual_seed(b * 100 + w)
    # no zero features: a misplaced zero would be hidden among the expected ones
    left = torch.rand(b, c, h, w, generator=generator) + 1
    right = -torch.rand(b, c, h, w, generator=generator) - 1
    built = implementations()[name](left, right, levels)
    expected = definition(left, right, levels)
    assert built.shape == expected.shape
    assert torch.equal(built, expected), (built - expected).abs().amax(dim=(0, 1, 3))


def test_the_definition_itself_on_a_hand_worked_case():
    """One channel, one row, columns numbered: plane d is [0]*d + left[d:] / right[:w-d]."""
    left = torch.arange(1.0, 6.0).view(1, 1, 1, 5)  # 1 2 3 4 5
    right = 10 * left  # 10 20 30 40 50
    volume = definition(left, right, 3)[0, :, :, 0]  # (2, 3, 5)
    assert volume[0].tolist() == [[1, 2, 3, 4, 5], [0, 2, 3, 4, 5], [0, 0, 3, 4, 5]]
    assert volume[1].tolist() == [[10, 20, 30, 40, 50], [0, 10, 20, 30, 40],
                                  [0, 0, 10, 20, 30]]
