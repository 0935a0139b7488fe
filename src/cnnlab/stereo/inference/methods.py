"""Running a stereo method on a pair: PSMNet in a precision, at a scale, on tiles, with its
confidence; or SGBM. Evaluation, reports and ``stereo predict`` all call a ``Method``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.engine.card import ModelCard
from cnnlab.engine.precision import LOW_PRECISION, inference_autocast
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.stereo.choices import CONFIDENCE_RADIUS, FAST_SCALE, PSMNET_STRIDE, SCALE  # noqa: F401
from cnnlab.stereo.data.preprocess import to_input
from cnnlab.stereo.inference.sgbm import sgbm_disparity
from cnnlab.stereo.inference.tiling import tiled_forward


def scaled_max_disparity(max_disparity: int, scale: float) -> int:
    """The range that covers ``max_disparity`` pixels once the images are scaled by
    ``scale``: the next multiple of 16 (PSMNet's constraint)."""
    step = PSMNET_STRIDE
    return max(step, math.ceil(max_disparity * scale / step - 1e-9) * step)


def scaled_outputs(model: nn.Module, left: torch.Tensor, right: torch.Tensor, full_range: int,
                   precision: str = "fp32", scale: float = 1.0, confidence: float | None = None,
                   tile: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """(B, H, W) float32 "disparity" of normalised (B, 3, H, W) views, computed in ``precision``
    (fp32, or bf16/fp16 autocast with the soft-argmin kept in fp32), and with ``confidence``
    (a radius in px) the "confidence" map too. int8 runs the int8 stage attached to the
    PSMNet (``stereo.inference.int8.attach_int8_stage``), features in bf16 where native;
    other precisions never use it. With ``scale`` < 1 the network sees the pair
    downscaled (antialiased), searching ``full_range`` scaled alike, and its outputs are
    brought back to full size (the disparity in full-resolution pixels). With ``tile`` the
    network runs on overlapping tiles of at most that size (see ``stereo.tiling``)."""
    SCALE.check(scale, "scale")
    if confidence is not None and not hasattr(model, "confidence_radius"):
        raise ConfigError("a confidence map needs the PyTorch model (`runtime` torch)")
    height, width = left.shape[-2:]
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    if scale != 1:
        left, right = (F.interpolate(x, small, mode="bilinear", align_corners=False,
                                     antialias=True) for x in (left, right))
    searched, radius = model.max_disparity, getattr(model, "confidence_radius", None)
    stage = getattr(model, "int8_stage", None)
    if precision == "int8" and stage is None:
        raise ConfigError("int8: the model has no int8 stage; load it with `precision` int8",
                          parameter="precision")
    model.set_max_disparity(scaled_max_disparity(full_range, scale))
    if confidence is not None:
        model.confidence_radius = confidence * scale  # a radius in the scaled pair's pixels
    if stage is not None and precision != "int8":
        _set_int8_stage(model, None)  # one network serves several precisions
    try:
        with torch.no_grad(), inference_autocast(left.device, precision):
            if tile is None:
                outputs = model(left, right)
            else:
                outputs = tiled_forward(model, left, right, tile)
    finally:  # the caller's model is left as it was
        model.set_max_disparity(searched)
        if confidence is not None:
            model.confidence_radius = radius
        if stage is not None and precision != "int8":
            _set_int8_stage(model, stage)
    outputs = {key: outputs[key].float() for key in ("disparity", "confidence")
               if key in outputs}
    if scale != 1:
        outputs = {key: F.interpolate(value[:, None], (height, width), mode="bilinear",
                                      align_corners=False)[:, 0]
                   for key, value in outputs.items()}
        outputs["disparity"] *= width / small[1]
    return outputs


def _set_int8_stage(model: nn.Module, stage: nn.Module | None) -> None:
    from cnnlab.stereo.inference.int8 import use_int8_stage

    use_int8_stage(model, stage)


def scaled_disparity(model: nn.Module, left: torch.Tensor, right: torch.Tensor,
                     full_range: int, precision: str = "fp32", scale: float = 1.0
                     ) -> torch.Tensor:
    """(B, H, W) float32 disparity (see ``scaled_outputs``)."""
    return scaled_outputs(model, left, right, full_range, precision, scale)["disparity"]


def check_uint8_views(left: np.ndarray, right: np.ndarray) -> None:
    """Refuse views other than (H, W, 3) uint8 arrays of one size, in one line naming the view:
    a float image in [0, 1] cast to uint8 would be nearly black, and the network would still
    answer (badly). ``stereo.views.as_view`` converts other inputs."""
    for name, image in (("left", left), ("right", right)):
        if not isinstance(image, np.ndarray):
            raise ConfigError(f": got {type(image).__name__}; expected an (H, W, 3) uint8 array",
                              parameter=name)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ConfigError(f": a {image.dtype} array of shape {image.shape}; expected (H, W, "
                              "3) uint8 RGB (convert it, or give it to StereoModel.predict with "
                              "value_range=)", parameter=name)
    if left.shape != right.shape:
        raise ConfigError(f": shape {right.shape} differs from left's {left.shape}",
                          parameter="right")


def pair_outputs(model: nn.Module, card: ModelCard, left: np.ndarray, right: np.ndarray,
                 precision: str = "fp32", scale: float = 1.0, confidence: float | None = None,
                 tile: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """(H, W) float32 "disparity" (and "confidence") of one uint8 RGB pair, normalised as the
    card says (see ``scaled_outputs``); at any scale the card's range, in full-resolution
    pixels, is what is covered. ``model`` is a PSMNet or an ``ExportedStereoModel`` (which has
    a ``device``). Views other than (H, W, 3) uint8 are refused (``check_uint8_views``)."""
    check_uint8_views(left, right)
    if precision not in ("fp32", "int8") and precision not in LOW_PRECISION:
        raise ConfigError(f"{precision!r}: expected fp32, bf16, fp16 or int8 (resolve 'auto' "
                          "with engine.precision.inference_precision)", parameter="precision")
    device = getattr(model, "device", None) or next(model.parameters()).device
    mean, std = card.preprocess["mean"], card.preprocess["std"]
    pair = (to_input(image, device, mean, std) for image in (left, right))
    outputs = scaled_outputs(model, *pair, card.kwargs["max_disparity"], precision, scale,
                             confidence, tile)
    return {key: value[0].cpu().numpy() for key, value in outputs.items()}


def disparity_of(model: nn.Module, card: ModelCard, left: np.ndarray, right: np.ndarray,
                 precision: str = "fp32", scale: float = 1.0) -> np.ndarray:
    """(H, W) float32 disparity of one (H, W, 3) uint8 RGB pair (see ``pair_outputs``; other
    arrays are refused: ``cnnlab.stereo.load(...).predict`` converts them)."""
    return pair_outputs(model, card, left, right, precision, scale)["disparity"]


Outputs = dict[str, np.ndarray]  # "disparity", "valid" (pixels produced), maybe "confidence"


@dataclass
class Method:
    """What computes disparity: ``run(left, right)`` of (H, W, 3) uint8 views gives
    {"disparity", "valid" (the pixels it produced), and "confidence" where it rates them;
    ``rated=False`` skips the confidence}. Called on a StereoSample, it runs on its views."""

    name: str
    title: str  # for figures and logs
    max_disparity: int  # the range it searches, in full-resolution pixels
    run: Callable[..., Outputs]

    def __call__(self, sample) -> Outputs:
        return self.run(sample.left, sample.right)


def psmnet_method(model: nn.Module, card: ModelCard, precision: str = "fp32",
                  scale: float = 1.0, confidence_radius: float | None = CONFIDENCE_RADIUS,
                  tile: tuple[int, int] | None = None) -> Method:
    """PSMNet in ``precision`` at ``scale`` (see ``pair_outputs``), with a confidence map
    where the model gives one (the PyTorch model does; an exported graph does not)."""
    if not hasattr(model, "confidence_radius"):
        confidence_radius = None

    def run(left: np.ndarray, right: np.ndarray, rated: bool = True) -> Outputs:
        outputs = pair_outputs(model, card, left, right, precision, scale,
                               confidence_radius if rated else None, tile)
        return finite_outputs(outputs, card, precision)

    return Method("psmnet", card.name or card.architecture, card.kwargs["max_disparity"], run)


def finite_outputs(outputs: Outputs, card: ModelCard, precision: str) -> Outputs:
    """A network's outputs with "valid" its finite pixels (a NaN or infinite disparity is
    never shown or scored as one: it is a hole, 0 in the map); none finite is an error."""
    disparity = outputs["disparity"]
    finite = np.isfinite(disparity)
    if not finite.any():
        hint = (f"; in {precision} it may overflow, try `precision` fp32" if precision != "fp32"
                else "; its weights are damaged or its training diverged")
        raise CheckpointError(f"{card.source.get('file') or card.name or card.architecture}: "
                              "the network's disparity is NaN or infinite on every pixel"
                              + hint)
    if not finite.all():
        outputs = outputs | {"disparity": np.where(finite, disparity, 0).astype(np.float32)}
    return outputs | {"valid": finite}


def sgbm_method(max_disparity: int) -> Method:
    """OpenCV's SGBM (see ``stereo.sgbm``): holes are pixels it did not produce."""
    def run(left: np.ndarray, right: np.ndarray, rated: bool = True) -> Outputs:
        check_uint8_views(left, right)
        disparity, valid = sgbm_disparity(left, right, max_disparity)
        return {"disparity": disparity, "valid": valid}

    searched = math.ceil(max_disparity / 16) * 16  # what SGBM searches
    return Method("sgbm", "SGBM (OpenCV)", searched, run)


def outputs_of(result: Outputs | tuple[np.ndarray, np.ndarray]) -> Outputs:
    """A predictor's answer as Outputs: Methods give them; plain functions of a sample may
    give (disparity, valid)."""
    if isinstance(result, dict):
        return result
    disparity, valid = result
    return {"disparity": disparity, "valid": valid}
