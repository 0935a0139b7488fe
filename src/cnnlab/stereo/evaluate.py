"""Evaluate PSMNet or SGBM on stereo pairs: EPE, D1, bad-1/2/3 on all / non-occluded pixels.

Per image and aggregated as KITTI does (error and pixel counts summed over the dataset). SGBM
holes are filled by KITTI's background interpolation before scoring, so they count as errors
where the fill is wrong, and the density of real SGBM output is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.engine.card import ModelCard
from cnnlab.engine.precision import inference_autocast
from cnnlab.errors import ConfigError
from cnnlab.stereo.datasets import (
    VAL_SEED,
    StereoDataset,
    StereoSample,
    SyntheticStereo,
    open_dataset,
)
from cnnlab.stereo.folder import open_folder
from cnnlab.stereo.metrics import error_counts, fill_holes_background, rates
from cnnlab.stereo.models.psmnet import DEFAULT_MAX_DISPARITY
from cnnlab.stereo.preprocess import to_input
from cnnlab.stereo.sgbm import check_range, sgbm_disparity
from cnnlab.stereo.synthetic import scene_max_disparity
from cnnlab.stereo.tiling import tiled_forward

Predictor = Callable[[StereoSample], tuple[np.ndarray, np.ndarray]]


# --fast: the network on the pair downscaled by this factor, with the range scaled alike.
# Official KITTI 2015 weights, the 3 shared KITTI 2015 pairs, bf16 on a 2-core Zen 4 CPU
# (bench/stereo_speed.py): 1.15 s at 384x1248, EPE 0.716 px, D1 1.47% (full resolution:
# 3.36 s, 0.349 px, 0.32%; half resolution: 0.56 s, 1.002 px, 4.48%)
FAST_SCALE = 2 / 3


def scaled_max_disparity(max_disparity: int, scale: float) -> int:
    """The range that covers ``max_disparity`` pixels once the images are scaled by
    ``scale``: the next multiple of 16 (PSMNet's constraint)."""
    return max(16, math.ceil(max_disparity * scale / 16 - 1e-9) * 16)


def scaled_outputs(model: nn.Module, left: torch.Tensor, right: torch.Tensor, full_range: int,
                   precision: str = "fp32", scale: float = 1.0, confidence: float | None = None,
                   tile: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """(B, H, W) float32 "disparity" of normalised (B, 3, H, W) views, computed in ``precision``
    (fp32, or bf16/fp16 autocast with the soft-argmin kept in fp32), and with ``confidence``
    (a radius in px) the "confidence" map too. With ``scale`` < 1 the network sees the pair
    downscaled (antialiased), searching ``full_range`` scaled alike, and its outputs are
    brought back to full size (the disparity in full-resolution pixels). With ``tile`` the
    network runs on overlapping tiles of at most that size (see ``stereo.tiling``)."""
    if not 0 < scale <= 1:
        raise ConfigError(f"--scale {scale}: expected a number in (0, 1]")
    if confidence is not None and not hasattr(model, "confidence_radius"):
        raise ConfigError("a confidence map needs the PyTorch model (--runtime torch)")
    height, width = left.shape[-2:]
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    if scale != 1:
        left, right = (F.interpolate(x, small, mode="bilinear", align_corners=False,
                                     antialias=True) for x in (left, right))
    searched, radius = model.max_disparity, getattr(model, "confidence_radius", None)
    model.set_max_disparity(scaled_max_disparity(full_range, scale))
    if confidence is not None:
        model.confidence_radius = confidence * scale  # a radius in the scaled pair's pixels
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
    outputs = {key: outputs[key].float() for key in ("disparity", "confidence")
               if key in outputs}
    if scale != 1:
        outputs = {key: F.interpolate(value[:, None], (height, width), mode="bilinear",
                                      align_corners=False)[:, 0]
                   for key, value in outputs.items()}
        outputs["disparity"] *= width / small[1]
    return outputs


def scaled_disparity(model: nn.Module, left: torch.Tensor, right: torch.Tensor,
                     full_range: int, precision: str = "fp32", scale: float = 1.0
                     ) -> torch.Tensor:
    """(B, H, W) float32 disparity (see ``scaled_outputs``)."""
    return scaled_outputs(model, left, right, full_range, precision, scale)["disparity"]


def pair_outputs(model: nn.Module, card: ModelCard, left: np.ndarray, right: np.ndarray,
                 precision: str = "fp32", scale: float = 1.0, confidence: float | None = None,
                 tile: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """(H, W) float32 "disparity" (and "confidence") of one uint8 RGB pair, normalised as the
    card says (see ``scaled_outputs``); at any scale the card's range, in full-resolution
    pixels, is what is covered. ``model`` is a PSMNet or an ``ExportedStereoModel`` (which has
    a ``device``)."""
    device = getattr(model, "device", None) or next(model.parameters()).device
    mean, std = card.preprocess["mean"], card.preprocess["std"]
    pair = (to_input(image, device, mean, std) for image in (left, right))
    outputs = scaled_outputs(model, *pair, card.kwargs["max_disparity"], precision, scale,
                             confidence, tile)
    return {key: value[0].cpu().numpy() for key, value in outputs.items()}


def disparity_of(model: nn.Module, card: ModelCard, left: np.ndarray, right: np.ndarray,
                 precision: str = "fp32", scale: float = 1.0) -> np.ndarray:
    """(H, W) float32 disparity of one uint8 RGB pair (see ``pair_outputs``)."""
    return pair_outputs(model, card, left, right, precision, scale)["disparity"]


class PSMNetPredictor:
    """A Predictor running PSMNet on a sample's views; with ``confidence`` (a radius in px) it
    keeps the last pair's confidence map in ``last_confidence`` (for sparsification curves)."""

    def __init__(self, model: nn.Module, card: ModelCard, precision: str = "fp32",
                 scale: float = 1.0, confidence: float | None = None):
        self.model, self.card, self.precision, self.scale = model, card, precision, scale
        self.confidence = confidence
        self.last_confidence: np.ndarray | None = None

    def __call__(self, sample: StereoSample) -> tuple[np.ndarray, np.ndarray]:
        outputs = pair_outputs(self.model, self.card, sample.left, sample.right,
                               self.precision, self.scale, self.confidence)
        self.last_confidence = outputs.get("confidence")
        return outputs["disparity"], np.ones_like(outputs["disparity"], dtype=bool)


def psmnet_predictor(model: nn.Module, card: ModelCard, precision: str = "fp32",
                     scale: float = 1.0, confidence: float | None = None) -> PSMNetPredictor:
    return PSMNetPredictor(model, card, precision, scale, confidence)


def sgbm_predictor(max_disparity: int) -> Predictor:
    def predict(sample: StereoSample):
        return sgbm_disparity(sample.left, sample.right, max_disparity)
    return predict


def predictors(method: str, model: nn.Module | None = None, card: ModelCard | None = None,
               max_disparity: int | None = None, precision: str = "fp32", scale: float = 1.0
               ) -> dict[str, Predictor]:
    """The methods ``method`` names ("psmnet", "sgbm" or "both"): PSMNet needs ``model`` and
    its ``card`` and runs in ``precision`` at ``scale``; SGBM searches ``max_disparity``
    (default: the model's range, else 192)."""
    chosen = {}
    if method in ("psmnet", "both"):
        if model is None or card is None:
            raise ConfigError("--checkpoint or --weights is required to evaluate PSMNet")
        chosen["psmnet"] = psmnet_predictor(model, card, precision, scale)
    if method in ("sgbm", "both"):
        chosen["sgbm"] = sgbm_predictor(eval_max_disparity(card, max_disparity))
    if not chosen:
        raise ConfigError(f"--model: choose psmnet, sgbm or both, not {method!r}")
    return chosen


def eval_max_disparity(card: ModelCard | None, max_disparity: int | None) -> int:
    """The disparity range of an evaluation: explicit, else the model card's, else PSMNet's
    published default."""
    if max_disparity is not None:
        return max_disparity
    return card.kwargs["max_disparity"] if card is not None else DEFAULT_MAX_DISPARITY


def open_eval_dataset(dataset: str, data_root: str | None, split: str, count: int,
                      synthetic_size: tuple[int, int], max_disparity: int,
                      folder: dict | None = None) -> StereoDataset:
    """The pairs ``stereo eval`` scores: a real dataset's split, ``count`` held-out synthetic
    scenes within the network's range, or a folder dataset (``folder``: ``open_folder``'s
    keyword arguments)."""
    if dataset == "synthetic":
        height, width = synthetic_size
        return SyntheticStereo(count, height, width, scene_max_disparity(max_disparity),
                               seed=VAL_SEED)
    if dataset == "folder":
        return open_folder(**(folder or {}))
    if not data_root:
        raise ConfigError(f"--data-root is required for {dataset}")
    return open_dataset(dataset, data_root, split)


def check_methods(methods: dict[str, Predictor], source: StereoDataset, max_disparity: int
                  ) -> None:
    """Refuse, before any pair is scored, what would fail on the way (SGBM's range)."""
    size = source.min_size() if "sgbm" in methods else None
    if size is not None:
        check_range(max_disparity, size[1])


def default_masks(sample: StereoSample) -> dict[str, np.ndarray]:
    """All pixels with ground truth, and the non-occluded ones where the dataset gives them."""
    masks = {"all": sample.valid}
    if sample.noc is not None:
        masks["noc"] = sample.noc
    return masks


def evaluate_samples(predict: Predictor, samples, log: Callable[[str], None] | None = None,
                     masks: Callable[[StereoSample], dict[str, np.ndarray]] = default_masks
                     ) -> dict:
    """Per-image and aggregated metrics over an iterable of StereoSamples (read one at a time),
    on the regions ``masks`` gives for each (a protocol's; by default all and noc)."""
    totals: dict[str, dict[str, float]] = {}
    rows = []
    density_sum = 0.0
    for sample in samples:
        disparity, valid_prediction = predict(sample)
        density = float(valid_prediction.mean())
        density_sum += density
        filled = (disparity if valid_prediction.all()  # dense output: nothing to fill
                  else fill_holes_background(disparity, valid_prediction))
        prediction = torch.from_numpy(filled)
        target = torch.from_numpy(sample.disparity)
        row = {"name": sample.name, "density": density}
        for region, mask in masks(sample).items():
            counts = {k: float(v) for k, v in
                      error_counts(prediction, target, torch.from_numpy(mask)).items()}
            region_totals = totals.setdefault(region, {})
            for key, value in counts.items():
                region_totals[key] = region_totals.get(key, 0.0) + value
            row[region] = rates(counts) | {"pixels": int(counts["pixels"])}
        rows.append(row)
        if log:
            first = next(iter(totals), None)
            if first is None:
                log(f"  [{len(rows)}] {sample.name}: no pixel to score")
                continue
            so_far = rates(totals[first])
            log(f"  [{len(rows)}] {sample.name}: EPE {row[first]['epe']:.3f} px, "
                f"D1 {row[first]['d1']:.2f}%, density {100 * density:.1f}% | {first} so far: "
                f"EPE {so_far['epe']:.3f} px, D1 {so_far['d1']:.2f}%")
    summary = {region: rates(counts) | {"pixels": int(counts["pixels"])}
               for region, counts in totals.items()}
    for region in summary:
        per_image = [r[region] for r in rows if region in r and r[region]["pixels"]]
        summary[region]["mean_per_image_epe"] = (
            float(np.mean([m["epe"] for m in per_image])) if per_image else float("nan"))
        summary[region]["mean_per_image_d1"] = (
            float(np.mean([m["d1"] for m in per_image])) if per_image else float("nan"))
    return {"images": len(rows), "density": density_sum / max(len(rows), 1),
            "aggregate": summary, "per_image": rows}


def format_table(results: dict[str, dict]) -> str:
    """Rows = (dataset, method); columns = EPE / D1 / bad-1/2/3 on all pixels, density."""
    lines = [f"{'dataset':<12} {'method':<10} {'pairs':>5} {'EPE':>7} {'D1%':>7} {'bad1%':>7} "
             f"{'bad2%':>7} {'bad3%':>7} {'density':>8}"]
    for key, result in results.items():
        dataset, method = key.split("/", 1)
        agg = result["aggregate"]["all"]
        lines.append(f"{dataset:<12} {method:<10} {result['images']:>5} {agg['epe']:>7.3f} "
                     f"{agg['d1']:>7.2f} {agg['bad1']:>7.2f} {agg['bad2']:>7.2f} "
                     f"{agg['bad3']:>7.2f} {100 * result['density']:>7.1f}%")
    return "\n".join(lines)
