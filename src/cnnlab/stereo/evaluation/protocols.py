"""Published evaluation protocols: which pairs, which pixels, which figure, how aggregated.

A number is comparable with a published one only under the same protocol. Each protocol here
names its dataset split, its pixel masks, its metrics and its aggregation, and carries the
published figures with their source, so that ``stereo eval --protocol`` prints them beside the
measured ones and writes the whole definition into its JSON.

Splits. The published fine-tuning code takes its KITTI validation pairs as ``listing[160:]`` of
an unsorted ``os.listdir``: which 40 (KITTI 2015) or 34 (KITTI 2012) frames that is depends on
the file system (ext4 lists in hash order), so it cannot be reproduced. cnnlab takes frames
160 and above, the split a sorted listing gives: fixed and the same everywhere. Note that the
published KITTI 2012 loader trains on all 194 pairs (``image[:]``), its validation pairs
included, and the official KITTI 2015 release was fine-tuned on all 200: validation figures
with the official weights are figures on training pairs.

Aggregation. KITTI's devkit sums error and pixel counts over the images; cnnlab does the same
for every protocol (and reports per-image means beside). The published scripts average per
batch of 8 pairs instead; with equal-size images and near-equal valid pixel counts the two
differ little, and batch membership again depends on the listing order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.stereo.evaluation.regions import non_occluded

if TYPE_CHECKING:  # no torch: the command line offers PROTOCOLS by name in --help
    from cnnlab.stereo.data.datasets import StereoSample

Masks = Callable[["StereoSample"], dict[str, np.ndarray]]
PAPER = "Chang & Chen, Pyramid Stereo Matching Network, CVPR 2018"
SCENEFLOW_MAX_GT = 192.0  # the published test scores pixels with gt < 192, whatever --maxdisp


@dataclass(frozen=True)
class Published:
    """One published figure: ``value`` of ``metric`` on ``region``, measured on ``data``."""

    metric: str  # a key of metrics.rates: epe, d1, bad1, bad2, bad3
    region: str
    value: float
    data: str
    source: str
    weights: str = ""  # the registered weights the figure belongs to ("" = the method)


@dataclass(frozen=True)
class Protocol:
    name: str
    dataset: str  # a key of stereo.datasets.DATASETS
    split: str
    summary: str
    regions: dict[str, str]  # region -> its definition, in words
    metrics: tuple[str, ...]  # the figures the protocol reports, the first one primary
    aggregation: str
    masks: Masks = field(repr=False, compare=False)
    published: tuple[Published, ...] = ()
    notes: tuple[str, ...] = ()

    def definition(self) -> dict:
        """What the JSON records: everything needed to compare a figure with another."""
        return {"name": self.name, "dataset": self.dataset, "split": self.split,
                "summary": self.summary, "regions": dict(self.regions),
                "metrics": list(self.metrics), "aggregation": self.aggregation,
                "published": [vars(p) for p in self.published], "notes": list(self.notes)}


def _sceneflow_masks(sample: StereoSample) -> dict[str, np.ndarray]:
    d = sample.disparity
    return {"all": sample.valid & (d > 0) & (d < SCENEFLOW_MAX_GT)}


def _kitti_masks(sample: StereoSample) -> dict[str, np.ndarray]:
    masks = {"all": sample.valid}
    if sample.noc is not None:
        masks["noc"] = sample.noc & sample.valid
    if sample.foreground is not None:  # KITTI 2015's D1-bg / D1-fg, on all pixels
        masks["bg"] = sample.valid & ~sample.foreground
        masks["fg"] = sample.valid & sample.foreground
    return masks


def _middlebury_masks(sample: StereoSample) -> dict[str, np.ndarray]:
    return {"all": sample.valid, "nonocc": non_occluded(sample)[0]}


_KITTI_SPLIT = ("val: frames 160 and above of a sorted listing (the published code takes "
                "listing[160:] of an unsorted directory listing, which depends on the file "
                "system)")
_D1 = "D1: error > 3 px and > 5% of the ground truth"
_ON_TRAINING = ("the official KITTI releases were fine-tuned on all training pairs, validation "
                "ones included: with them this split measures fit, not generalisation")

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol(
        "sceneflow", "sceneflow", "test",
        "FlyingThings3D TEST (cleanpass), EPE over pixels with 0 < gt < 192, as the published "
        "main.py scores",
        {"all": "finite ground truth with 0 < gt < 192 px (the published test's mask, fixed at "
                "192 whatever the searched range)"},
        ("epe", "d1", "bad1", "bad3"),
        "error and pixel counts summed over all pairs (the published script averages the "
        "pixel means of batches of 8 pairs)",
        _sceneflow_masks,
        (Published("epe", "all", 1.09, "FlyingThings3D TEST", PAPER + ", Table 4",
                   "psmnet-sceneflow"),
         Published("epe", "all", 0.974, "FlyingThings3D TEST",
                   "the author's record, PSMNet issue #224 (2021)", "psmnet-sceneflow-new")),
        ("cnnlab used to score every valid pixel, gt >= 192 included: not comparable",)),
    Protocol(
        "kitti2015-val", "kitti2015", "val",
        "KITTI 2015 validation pairs of the published fine-tuning split, KITTI's D1",
        {"all": "pixels with ground truth in disp_occ_0 (occluded ones included)",
         "noc": "pixels with ground truth in disp_noc_0 (non-occluded)",
         "bg": "all, where obj_map is 0 (where the object maps are present)",
         "fg": "all, where obj_map is > 0: the cars (where the object maps are present)"},
        ("d1", "epe", "bad3"),
        "error and pixel counts summed over the pairs, as KITTI's devkit does (the published "
        "finetune.py averages the D1 of batches of 8 pairs)",
        _kitti_masks,
        tuple(Published("d1", region, value, "KITTI 2015 test set (official leaderboard; "
                        "not these pairs)", PAPER + ", Table 6", "psmnet-kitti2015")
              for region, value in (("all", 2.32), ("noc", 2.14), ("bg", 1.86),
                                    ("fg", 4.62))),
        (_KITTI_SPLIT, _D1, _ON_TRAINING)),
    Protocol(
        "kitti2012-val", "kitti2012", "val",
        "KITTI 2012 validation pairs of the published fine-tuning split, KITTI 2012's > 3 px "
        "error",
        {"all": "pixels with ground truth in disp_occ (occluded ones included)",
         "noc": "pixels with ground truth in disp_noc (non-occluded)"},
        ("bad3", "epe", "d1"),
        "error and pixel counts summed over the pairs, as KITTI's devkit does",
        _kitti_masks,
        (Published("bad3", "noc", 1.49, "KITTI 2012 test set (official leaderboard; not "
                   "these pairs)", PAPER + ", Table 5", "psmnet-kitti2012"),
         Published("bad3", "all", 1.89, "KITTI 2012 test set (official leaderboard; not "
                   "these pairs)", PAPER + ", Table 5", "psmnet-kitti2012")),
        (_KITTI_SPLIT, "bad3: error > 3 px (KITTI 2012's Out-Noc / Out-All)",
         "the published KITTI 2012 loader trains on all 194 pairs (image[:]), its validation "
         "pairs included", _ON_TRAINING)),
    Protocol(
        "middlebury", "middlebury", "all",
        "Middlebury scenes at the resolution the files are given in: bad-2.0 and EPE on the "
        "non-occluded and all masks",
        {"all": "pixels with ground truth",
         "nonocc": "the scene's non-occlusion mask (mask0nocc.png or nonocc.png: 255); where a "
                   "scene has none, derived from its ground truth (occluded: a nearer pixel "
                   "lands on the same right-view pixel, or the match leaves the image)"},
        ("bad2", "epe", "d1"),
        "error and pixel counts summed over the scenes (Middlebury's own tables average per "
        "scene, weighted; the per-scene figures are in the JSON)",
        _middlebury_masks,
        (),
        ("PSMNet's paper publishes no Middlebury figure",)),
)}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ConfigError(f"{name!r}: unknown; choose from {', '.join(PROTOCOLS)}",
                          parameter="protocol")
    return PROTOCOLS[name]


def format_protocol_table(protocol: Protocol, results: dict[str, dict],
                          weights: str | None = None) -> str:
    """Rows = method x region; columns = the protocol's metrics, and the published figure for
    the row's primary metric where there is one (those of ``weights`` marked)."""
    metrics = protocol.metrics
    lines = [f"{protocol.name}: {protocol.summary}",
             f"{'method':<10} {'region':<7} {'pairs':>5} {'pixels':>11} "
             + " ".join(f"{_label(m):>7}" for m in metrics) + "  published"]
    for method, result in results.items():
        for region, figures in result["aggregate"].items():
            shown = [p for p in protocol.published if p.region == region]
            published = "; ".join(
                f"{_label(p.metric)} {p.value:g}{'%' if p.metric != 'epe' else ' px'}"
                f"{' (' + p.weights + ')' if p.weights else ''}"
                f"{' <- these weights' if weights and p.weights == weights else ''}"
                for p in shown) if method == "psmnet" else ""
            lines.append(f"{method:<10} {region:<7} {result['images']:>5} "
                         f"{figures['pixels']:>11,} "
                         + " ".join(f"{figures[m]:>7.3f}" for m in metrics) + f"  {published}")
    sources = sorted({p.source for p in protocol.published})
    lines += [f"  published: {source}" for source in sources]
    lines += [f"  note: {note}" for note in protocol.notes]
    return "\n".join(lines)


def _label(metric: str) -> str:
    return {"epe": "EPE", "d1": "D1%", "bad1": "bad1%", "bad2": "bad2%", "bad3": "bad3%"}[metric]
