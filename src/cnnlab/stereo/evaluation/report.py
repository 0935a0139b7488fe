"""Where PSMNet beats SGBM and where it does not: errors per pixel region, as a report.

``analyse`` scores every method on every region of ``regions.region_masks`` (occluded, low
texture, border, by disparity), summing counts over a dataset as KITTI does, with holes filled
exactly as ``stereo eval`` fills them so the "all" figures agree with it; it keeps pictures of
only the few worst pairs. ``write_report`` turns the numbers into tables, a chart, findings
worded from the numbers, and the worst pairs: one self-contained HTML file or Markdown + PNGs.
"""

from __future__ import annotations

import base64
import heapq
import html
import io
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnlab.engine.atomic import atomic_write, atomic_write_json, atomic_write_text
from cnnlab.errors import ConfigError, DataError
from cnnlab.stereo.choices import REPORT_FORMATS
from cnnlab.stereo.data.datasets import StereoDataset, StereoSample
from cnnlab.stereo.evaluation.evaluate import Predictor
from cnnlab.stereo.evaluation.metrics import rates, region_counts
from cnnlab.stereo.evaluation.regions import (
    BEYOND_RANGE,
    CONTRASTS,
    DEPTH_BINS,
    OCCLUSION_SOURCES,
    describe_regions,
    region_masks,
)
from cnnlab.stereo.inference.confidence import Sparsification, describe_curve, sparsification_figure
from cnnlab.stereo.inference.methods import CONFIDENCE_RADIUS, outputs_of
from cnnlab.stereo.inference.visualize import KITTI_ERROR_MAP, colorize_disparity, colorize_error

FORMATS = REPORT_FORMATS
SMALL_REGION = 1000  # pixels: below this a region's rates are rough, and the report says so
THUMBNAIL_WIDTH = 640  # px: pictures of the worst pairs are kept (and shown) at most this wide
DISPLAY_NAMES = {"psmnet": "PSMNet", "sgbm": "SGBM"}
DEFAULT_TITLE = "PSMNet and SGBM: errors by region"
SPARSIFICATION_NOTE = (
    f"PSMNet's confidence is the probability mass its soft-argmin puts within "
    f"{CONFIDENCE_RADIUS:g} px of its own estimate. Dropping the least confident pixels "
    "first, the EPE of the pixels kept should fall; the oracle drops the largest errors "
    "first and is the floor no confidence can beat. Errors are measured on every pixel with "
    "ground truth.")


def _display(method: str) -> str:
    return DISPLAY_NAMES.get(method, method)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _samples(source: Iterable[StereoSample]) -> Iterable[StereoSample]:
    """One sample at a time; a dataset object is read by index (SyntheticStereo never ends
    under Python's old iteration protocol)."""
    if isinstance(source, StereoDataset):
        return (source.load(i) for i in range(len(source)))
    return source


def _thumbnail(image: np.ndarray, width: int, resample: int) -> np.ndarray:
    if image.shape[1] <= width:
        return image
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return np.asarray(Image.fromarray(image).resize((width, height), resample))


def _pair_images(sample: StereoSample, outputs: dict[str, tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]],
                 scale_max: float, width: int) -> dict[str, Any]:
    """Small pictures of one pair: the left view, the GT and each method's disparity (holes
    black) in KITTI's colours, and each method's KITTI error map (of the scored, filled map)."""
    def small(image: np.ndarray) -> np.ndarray:
        return _thumbnail(image, width, Image.NEAREST)  # nearest: keeps the colour classes

    return {"left": _thumbnail(sample.left, width, Image.LANCZOS),
            "ground truth": small(colorize_disparity(sample.disparity, scale_max, sample.valid)),
            "disparity": {m: small(colorize_disparity(raw, scale_max, produced))
                          for m, (raw, produced, _) in outputs.items()},
            "error": {m: small(colorize_error(filled, sample.disparity, sample.valid))
                      for m, (_, _, filled) in outputs.items()}}


def analyse(predictors: dict[str, Predictor], datasets: dict[str, Iterable[StereoSample]],
            max_disparity: int, log: Callable[[str], None] | None = None, *, top_k: int = 3,
            low_texture: float = 4.0, border: int = 32,
            depth_bins: tuple[tuple[str, float, float], ...] = DEPTH_BINS,
            thumbnail_width: int = THUMBNAIL_WIDTH) -> dict:
    """Errors of every method on every region of every dataset, pairs read one at a time.

    Counts are summed per dataset (KITTI's aggregation); each pair's "all" EPE/D1 is kept, and
    the pictures of the ``top_k`` worst pairs by the lead method's D1 (PSMNet if present, else
    the first method). Methods' holes are filled as ``stereo eval`` fills them.
    """
    if not predictors:
        raise ConfigError(": no method to analyse", parameter="model")
    methods = list(predictors)
    lead = "psmnet" if "psmnet" in predictors else methods[0]
    settings = {"low_texture": low_texture, "border": border, "top_k": top_k,
                "depth_bins": [[name, low, None if math.isinf(high) else high]
                               for name, low, high in depth_bins]}
    analysis = {"max_disparity": max_disparity, "methods": methods, "lead": lead,
                "settings": settings,
                "regions": describe_regions(max_disparity, low_texture, border, depth_bins),
                "datasets": {}}
    curves: dict[str, Sparsification] = {}
    for dataset, source in datasets.items():
        region_pixels: dict[str, float] = {}
        totals: dict[str, dict[str, dict[str, float]]] = {m: {} for m in methods}
        density = dict.fromkeys(methods, 0.0)
        occlusion = dict.fromkeys(OCCLUSION_SOURCES, 0)
        per_pair: list[dict] = []
        worst: list[tuple[float, int, dict]] = []  # min-heap of the top_k worst pairs
        for sample in _samples(source):
            if not sample.valid.any():  # its rates would read as a perfect 0
                if log:
                    log(f"  [{dataset}] {sample.name}: no pixel with ground truth, left out")
                continue
            masks, notes = region_masks(sample, max_disparity, low_texture, border, depth_bins)
            occlusion[notes["occlusion"]] += 1
            row: dict[str, Any] = {"name": sample.name, "methods": {}}
            outputs = {}
            for method, predict in predictors.items():
                answer = outputs_of(predict(sample))
                disparity, produced = answer["disparity"], answer["valid"]
                if disparity.shape != sample.disparity.shape:
                    raise DataError(f"{dataset} {sample.name}: {method} gave a disparity of "
                                    f"{disparity.shape}, the ground truth is "
                                    f"{sample.disparity.shape}")
                filled, scored = region_counts(disparity, produced, sample.disparity, masks)
                outputs[method] = (disparity, produced, filled)
                confidence = answer.get("confidence")
                if confidence is not None:  # a method that rates its pixels: how far to trust
                    valid = sample.valid
                    curves.setdefault(f"{dataset} / {_display(method)}", Sparsification()).add(
                        np.abs(filled - sample.disparity)[valid], confidence[valid])
                for region, counts in scored.items():
                    summed = totals[method].setdefault(region, {})
                    for key, value in counts.items():
                        summed[key] = summed.get(key, 0.0) + value
                    if region == "all":
                        row["methods"][method] = rates(counts) | {
                            "density": float(produced.mean())}
                density[method] += float(produced.mean())
            for region, mask in masks.items():
                region_pixels[region] = region_pixels.get(region, 0.0) + float(mask.sum())
            per_pair.append(row)
            score = row["methods"][lead]["d1"]
            if top_k > 0 and (len(worst) < top_k or score > worst[0][0]):
                gt_max = float(sample.disparity[sample.valid].max()) if sample.valid.any() else 0
                scale_max = max(gt_max, 1.0)
                entry = {"name": sample.name, "d1": {m: r["d1"] for m, r in row["methods"].items()},
                         "epe": {m: r["epe"] for m, r in row["methods"].items()},
                         "scale_max": scale_max,
                         "images": _pair_images(sample, outputs, scale_max, thumbnail_width)}
                item = (score, len(per_pair), entry)
                if len(worst) < top_k:
                    heapq.heappush(worst, item)
                else:
                    heapq.heapreplace(worst, item)
            if log:
                scores = " | ".join(
                    f"{_display(m)} EPE {r['epe']:.3f} px, D1 {r['d1']:.2f}%"
                    + (f" (density {100 * r['density']:.1f}%)" if r["density"] < 1 else "")
                    for m, r in row["methods"].items())
                log(f"  [{dataset} {len(per_pair)}] {sample.name}: {scores}")
        if not per_pair:
            raise DataError(f"{dataset}: no pairs with ground truth to analyse")
        everything = max(region_pixels.get("all", 0.0), 1.0)
        analysis["datasets"][dataset] = {
            "pairs": len(per_pair),
            "occlusion": occlusion,
            "regions": {r: {"pixels": int(p), "share": p / everything}
                        for r, p in region_pixels.items()},
            "methods": {m: {"density": density[m] / len(per_pair),
                            "regions": {r: rates(c) | {"pixels": int(c["pixels"]),
                                                       "counts": c}
                                        for r, c in totals[m].items()}}
                        for m in methods},
            "per_pair": per_pair,
            "worst": [entry for _, _, entry in sorted(worst, key=lambda item: (-item[0],
                                                                                item[1]))],
        }
    if curves:
        analysis["sparsification"] = {name: curve.curve() for name, curve in curves.items()}
        analysis["sparsification_note"] = SPARSIFICATION_NOTE
    return analysis


# ----------------------------------------------------------------------------- findings


def _rough(result: dict, *regions: str) -> str:
    small = [f"{r}: {result['regions'][r]['pixels']:,} px" for r in regions
             if result["regions"].get(r, {}).get("pixels", 0) < SMALL_REGION]
    return f" (few pixels, {'; '.join(small)}: a rough figure)" if small else ""


def _pixels(result: dict, region: str) -> int:
    return result["regions"].get(region, {}).get("pixels", 0)


def _compare(result: dict, first: str, second: str, region: str) -> str:
    """One sentence (no capital, no full stop) comparing two methods' D1 on a region."""
    a = result["methods"][first]["regions"][region]["d1"]
    b = result["methods"][second]["regions"][region]["d1"]
    one, two = _display(first), _display(second)
    where = f"on {region} pixels"
    if a == 0 and b == 0:
        text = f"neither {one} nor {two} makes a D1 error {where}"
    elif a == 0 or b == 0:
        clean, other, value = (one, two, b) if a == 0 else (two, one, a)
        text = f"{clean} makes no D1 error {where}, where {other}'s D1 is {value:.2f}%"
    elif max(a, b) / min(a, b) < 1.1:
        text = f"{one} and {two} have about the same D1 {where} ({a:.2f}% vs {b:.2f}%)"
    else:
        ratio, word = (b / a, "lower") if a < b else (a / b, "higher")
        text = f"{one}'s D1 is {ratio:.1f}x {word} than {two}'s {where} ({a:.2f}% vs {b:.2f}%)"
    return text + _rough(result, region)


def _sentence(text: str) -> str:
    return text + "."  # not capitalised: a sentence may start with a method's own name


def _contrast(result: dict, method: str, hard: str, easy: str) -> str:
    """One sentence: a method's error on a hard region against its complement."""
    scores = result["methods"][method]["regions"]
    a, b = scores[hard]["d1"], scores[easy]["d1"]
    name = _display(method)
    epe = f"EPE {scores[hard]['epe']:.2f} vs {scores[easy]['epe']:.2f} px"
    if a == 0 and b == 0:
        text = f"{name} makes no D1 error on {hard} or {easy} pixels ({epe})"
    elif a == 0 or b == 0:
        text = f"{name}'s D1 is {a:.2f}% on {hard} pixels and {b:.2f}% on {easy} pixels ({epe})"
    elif a >= b:
        text = (f"{name}'s D1 on {hard} pixels is {a / b:.1f}x its D1 on {easy} pixels "
                f"({a:.2f}% vs {b:.2f}%; {epe})")
    else:
        text = (f"{name}'s D1 on {hard} pixels is {b / a:.1f}x lower than on {easy} pixels "
                f"({a:.2f}% vs {b:.2f}%; {epe})")
    return _sentence(text + _rough(result, hard, easy))


def findings(analysis: dict, dataset: str) -> list[str]:
    """Sentences worded from one dataset's numbers: the lead method against each other one
    (overall, where its advantage is largest and smallest), each method's hard regions against
    their complements, its D1 by disparity, pixels beyond the range, and holes filled."""
    result = analysis["datasets"][dataset]
    methods, lead = analysis["methods"], analysis["lead"]
    present = [r for r in result["regions"] if _pixels(result, r) > 0]
    lines = []
    for other in (m for m in methods if m != lead):
        lines.append(_sentence("Overall, " + _compare(result, lead, other, "all")))
        # the lead's advantage as a ratio of D1; the 0.01-point floor keeps zeros comparable
        advantage = {r: (result["methods"][other]["regions"][r]["d1"] + 0.01)
                     / (result["methods"][lead]["regions"][r]["d1"] + 0.01)
                     for r in present if r != "all"}
        if advantage:
            best = max(advantage, key=advantage.get)
            worst = min(advantage, key=advantage.get)
            versus = f"{_display(lead)} against {_display(other)}"
            lines.append(_sentence(f"Best region for {versus}: "
                                   + _compare(result, lead, other, best)))
            if worst != best:
                lines.append(_sentence(f"Worst region for {versus}: "
                                       + _compare(result, lead, other, worst)))
    for method in methods:
        for hard, easy in CONTRASTS:
            if _pixels(result, hard) and _pixels(result, easy):
                lines.append(_contrast(result, method, hard, easy))
        bins = [name for name, _, _ in analysis["settings"]["depth_bins"]
                if _pixels(result, name)]
        if len(bins) > 1:
            scores = result["methods"][method]["regions"]
            highest = max(bins, key=lambda b: scores[b]["d1"])
            listed = ", ".join(f"{b} {scores[b]['d1']:.2f}%" for b in bins)
            peak = f"; highest on {highest}" if scores[highest]["d1"] > 0 else ""
            lines.append(f"{_display(method)}'s D1 by ground-truth disparity: {listed}{peak}"
                         + _rough(result, *bins) + ".")
    if _pixels(result, BEYOND_RANGE):
        region = result["regions"][BEYOND_RANGE]
        scores = ", ".join(f"{_display(m)}'s D1 there is "
                           f"{result['methods'][m]['regions'][BEYOND_RANGE]['d1']:.2f}%"
                           for m in methods)
        lines.append(f"{region['pixels']:,} pixels ({100 * region['share']:.2f}%) have ground "
                     f"truth of {analysis['max_disparity']} px or more, beyond the searched "
                     f"range: {scores}" + _rough(result, BEYOND_RANGE) + ".")
    for method in methods:
        share = result["methods"][method]["density"]
        if share < 1:
            lines.append(f"{_display(method)} gave a disparity for {100 * share:.1f}% of pixels; "
                         "its holes were filled by KITTI's background interpolation and scored "
                         "like any other pixel.")
    return lines


# ----------------------------------------------------------------------------- pictures


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def _bar_chart(analysis: dict, dataset: str) -> bytes:
    """Grouped horizontal bars: D1 per region (rows) per method (colours), values at the ends."""
    from cnnlab.engine.plotting import pyplot

    plt = pyplot()

    result = analysis["datasets"][dataset]
    regions = [r for r in result["regions"] if _pixels(result, r) > 0]
    methods = analysis["methods"]
    height = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(regions) * max(1, len(methods) / 2) + 1.4))
    for i, method in enumerate(methods):
        values = [result["methods"][method]["regions"][r]["d1"] for r in regions]
        positions = np.arange(len(regions)) - 0.4 + height * (i + 0.5)
        bars = ax.barh(positions, values, height, label=_display(method))
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=2)
    ax.set_yticks(np.arange(len(regions)),
                  [r + (" *" if _pixels(result, r) < SMALL_REGION else "") for r in regions])
    ax.invert_yaxis()
    ax.set_xlabel("D1 (% of pixels off by more than 3 px and 5% of the true disparity)")
    ax.set_ylabel("region")
    ax.set_xlim(0, max(1.0, ax.get_xlim()[1] * 1.12))  # room for the value labels
    ax.legend(title="method", fontsize=8, loc="lower right")
    title = f"{dataset}: D1 by region ({_count(result['pairs'], 'pair')})"
    if any(_pixels(result, r) < SMALL_REGION for r in regions):
        title += f"; * fewer than {SMALL_REGION} pixels"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _pair_figure(analysis: dict, entry: dict) -> bytes:
    """Left column: the GT and each method's disparity (holes black) under one colour bar in
    px; right column: the left view and each method's error map under KITTI's error legend."""
    from cnnlab.engine.plotting import pyplot

    plt = pyplot()
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.patches import Patch

    images, methods = entry["images"], analysis["methods"]
    scale_max = entry["scale_max"]
    height, width = images["left"].shape[:2]
    panel = 5.0  # inches per picture
    fig, axes = plt.subplots(1 + len(methods), 2, squeeze=False, layout="constrained",
                             figsize=(2 * panel + 3.2,
                                      (1 + len(methods)) * (panel * height / width + 0.35) + 0.4))
    rows = [("ground truth (black: none)", images["ground truth"], "left view",
             images["left"])]
    for method in methods:
        name = _display(method)
        rows.append((f"{name} disparity (black: no output)", images["disparity"][method],
                     f"{name} error: D1 {entry['d1'][method]:.2f}%, EPE "
                     f"{entry['epe'][method]:.2f} px", images["error"][method]))
    for (left_title, left_image, right_title, right_image), (ax_left, ax_right) in zip(rows,
                                                                                      axes):
        ax_left.imshow(left_image)
        ax_left.set_title(left_title, fontsize=8)
        ax_right.imshow(right_image)
        ax_right.set_title(right_title, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    ramp = colorize_disparity(np.linspace(1e-6, scale_max, 256)[None], scale_max)[0] / 255.0
    mappable = plt.cm.ScalarMappable(Normalize(0, scale_max), ListedColormap(ramp))
    fig.colorbar(mappable, ax=axes[:, 0], location="left", shrink=0.7, label="disparity (px)")
    handles = [Patch(color=np.array(rgb) / 255.0,
                     label=(f"{lower:.3g} to {upper:.3g}" if np.isfinite(upper)
                            else f"{lower:.3g} or more"))
               for lower, upper, rgb in KITTI_ERROR_MAP]
    fig.legend(handles=handles, title="error / tolerance\n(larger of 3 px and 5%\nof the true "
               "disparity);\n1 or more: a D1 error", fontsize=7, title_fontsize=7,
               loc="outside right center", frameon=False)
    fig.suptitle(entry["name"], fontsize=10)
    return _png(fig)


# ----------------------------------------------------------------------------- documents
# A report is a list of blocks, rendered to HTML or Markdown:
# ("h1" | "h2" | "h3" | "p", text), ("ul", [text]), ("table", header, rows of (text, bold)),
# ("img", file stem, png bytes, alt text)


def _table(analysis: dict, dataset: str) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    result, methods = analysis["datasets"][dataset], analysis["methods"]
    header = ["region", "pixels", "share"]
    for method in methods:
        header += [f"{_display(method)} EPE (px)", f"{_display(method)} D1 (%)"]
    if len(methods) > 1:
        header.append("better (D1)")
    rows = []
    for region, info in result["regions"].items():
        if not info["pixels"]:
            continue
        scores = {m: result["methods"][m]["regions"][region] for m in methods}
        best_epe = min(s["epe"] for s in scores.values())
        best_d1 = min(s["d1"] for s in scores.values())
        mark = " *" if info["pixels"] < SMALL_REGION else ""
        row = [(region + mark, False), (f"{info['pixels']:,}", False),
               (f"{100 * info['share']:.1f}%", False)]
        for method in methods:
            several = len(methods) > 1
            row += [(f"{scores[method]['epe']:.3f}", several and scores[method]["epe"] == best_epe),
                    (f"{scores[method]['d1']:.2f}", several and scores[method]["d1"] == best_d1)]
        if len(methods) > 1:
            ranked = sorted(methods, key=lambda m: (scores[m]["d1"], scores[m]["epe"]))
            tie = (scores[ranked[0]]["d1"], scores[ranked[0]]["epe"]) == \
                (scores[ranked[1]]["d1"], scores[ranked[1]]["epe"])
            row.append(("tie" if tie else _display(ranked[0]), not tie))
        rows.append(row)
    return header, rows


def _blocks(analysis: dict, title: str, card: dict | None) -> list[tuple]:
    methods = ", ".join(_display(m) for m in analysis["methods"])
    blocks: list[tuple] = [("h1", title), ("p", (
        f"Methods: {methods}, searching disparities up to {analysis['max_disparity']} px. EPE is "
        "the mean absolute disparity error in pixels; D1 is KITTI's share of pixels whose error "
        "exceeds both 3 px and 5% of the true disparity. A method's holes (SGBM leaves some) "
        "are filled by KITTI's background interpolation before scoring, as `stereo eval` does, "
        "so the 'all' and 'non-occluded' rows agree with it. Counts are summed over each "
        "dataset's pairs; regions overlap ('all' holds every other) and every region holds "
        "only pixels with ground truth."))]
    if card:
        facts = [f"{key}: {card[key]}" for key in ("name", "architecture") if card.get(key)]
        source = card.get("source") or {}
        facts += [f"source {key}: {value}" for key, value in source.items()]
        if facts:
            blocks += [("h2", "Model"), ("ul", facts)]
    blocks += [("h2", "Regions"),
               ("ul", [f"{name}: {text}" for name, text in analysis["regions"].items()])]
    occlusion = []
    for dataset, result in analysis["datasets"].items():
        counts = result["occlusion"]
        parts = []
        if counts.get("dataset"):
            parts.append("the dataset's own non-occluded mask for "
                         + _count(counts["dataset"], "pair"))
        if counts.get("derived from GT"):
            parts.append("derived from the ground truth for "
                         + _count(counts["derived from GT"], "pair")
                         + " (each pixel forward-warped to the right view; hidden where a "
                           "surface more than 1 px nearer lands on the same column, or where "
                           "it leaves the view)")
        occlusion.append(f"{dataset}: {' and '.join(parts)}")
    blocks += [("p", "Where the occlusion masks come from:"), ("ul", occlusion)]
    for dataset, result in analysis["datasets"].items():
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", dataset)
        header, rows = _table(analysis, dataset)
        blocks += [("h2", f"{dataset} ({_count(result['pairs'], 'pair')})"),
                   ("table", header, rows),
                   ("p", "Bold: the better method per column; * fewer than "
                         f"{SMALL_REGION} pixels, a rough figure; share: of the pixels with "
                         "ground truth."),
                   ("img", f"{stem}_d1_by_region", _bar_chart(analysis, dataset),
                    f"D1 by region on {dataset}"),
                   ("h3", "Findings"), ("ul", findings(analysis, dataset))]
        if result["worst"]:
            count = len(result["worst"])
            blocks.append(("h3", ("The worst pair" if count == 1 else f"The {count} worst pairs")
                           + f" by {_display(analysis['lead'])}'s D1"))
            for rank, entry in enumerate(result["worst"], 1):
                blocks.append(("img", f"{stem}_worst_{rank}", _pair_figure(analysis, entry),
                               f"{entry['name']}: left view, disparities and error maps"))
    curves = analysis.get("sparsification")
    if curves:
        blocks += [("h2", "Which pixels to trust: sparsification"),
                   ("p", analysis.get("sparsification_note", "")),
                   ("img", "sparsification", _png(sparsification_figure(curves)),
                    "EPE of the pixels kept as the least confident are dropped"),
                   ("ul", [describe_curve(name, curve) for name, curve in curves.items()])]
    return blocks


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "line-height:1.45;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
        "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
        "th:first-child,td:first-child{text-align:left}th{background:#f2f2f2}"
        "img{max-width:100%;height:auto;display:block;margin:1em 0}code{background:#f4f4f4}")


def _inline_code(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _render_html(blocks: list[tuple], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           *_html_blocks(blocks), "</body></html>"]
    return "\n".join(out) + "\n"


def report_html(analysis: dict, title: str = DEFAULT_TITLE, card: dict | None = None) -> str:
    """The report as an HTML fragment (no page around it), as a notebook shows it."""
    if card is not None and not isinstance(card, dict):
        card = card.to_dict()  # a ModelCard
    return "<div>\n" + "\n".join(_html_blocks(_blocks(analysis, title, card))) + "\n</div>"


def _html_blocks(blocks: list[tuple]) -> list[str]:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{_inline_code(html.escape(block[1]))}</{kind}>")
        elif kind == "ul":
            items = "".join(f"<li>{_inline_code(html.escape(item))}</li>" for item in block[1])
            out.append(f"<ul>{items}</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block[1])
            body = "".join(
                "<tr>" + "".join(f"<td><strong>{html.escape(text)}</strong></td>" if bold
                                 else f"<td>{html.escape(text)}</td>" for text, bold in row)
                + "</tr>" for row in block[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(block[2]).decode("ascii")
            out.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(block[3])}">')
    return out


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _render_markdown(blocks: list[tuple], folder: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown text and the PNG files it links to (relative names in ``folder``)."""
    out, files = [], {}
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {block[1]}\n")
        elif kind == "p":
            out.append(block[1] + "\n")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]) + "\n")
        elif kind == "table":
            out.append("| " + " | ".join(_markdown_cell(c) for c in block[1]) + " |")
            out.append("|" + "|".join(":---" if i == 0 else "---:"
                                      for i in range(len(block[1]))) + "|")
            for row in block[2]:
                cells = [f"**{_markdown_cell(t)}**" if bold else _markdown_cell(t)
                         for t, bold in row]
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        elif kind == "img":
            name = f"{block[1]}.png"
            files[name] = block[2]
            out.append(f"![{block[3]}]({folder}/{name})\n")
    return "\n".join(out), files


def _without_images(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_images(v) for k, v in value.items() if k != "images"}
    if isinstance(value, list):
        return [_without_images(v) for v in value]
    return value


def report_path(out: Path, fmt: str) -> Path:
    """The report's file: ``out`` with the format's suffix added when it has none; a format,
    a suffix or a folder that cannot be the report refused (before any analysis runs)."""
    if fmt not in FORMATS:
        raise ConfigError(f"{fmt}: choose {' or '.join(FORMATS)}", parameter="format")
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{out}: a folder; give the name of the report file to write",
                          parameter="out")
    if not out.suffix:
        out = out.with_name(out.name + FORMATS[fmt])
    if out.suffix == ".json":
        raise ConfigError(f"{out}: the numbers go to <stem>.json; name the report "
                          f"{out.with_suffix(FORMATS[fmt]).name}", parameter="out")
    other = {suffix for name, suffix in FORMATS.items() if name != fmt}
    if out.suffix.lower() in other:
        raise ConfigError(f"{out}: a {out.suffix} name for a {fmt} report; name it "
                          f"{out.with_suffix(FORMATS[fmt]).name} or change `format`",
                          parameter="out")
    return out


def write_report(analysis: dict, out: Path, fmt: str = "html", title: str = DEFAULT_TITLE,
                 card: dict | None = None) -> list[Path]:
    """Write ``analysis`` as a report at ``out`` (its suffix added if missing): "html", one
    self-contained file with the pictures inlined; "markdown", a .md file with its PNGs in
    ``<stem>_files/`` beside it. The numbers go to ``<stem>.json`` too (without the pictures).
    ``card`` is a model card's dict, whose name and source are cited. Returns the paths."""
    out = report_path(out, fmt)
    if card is not None and not isinstance(card, dict):
        card = card.to_dict()  # a ModelCard
    blocks = _blocks(analysis, title, card)
    written = []
    if fmt == "html":
        written.append(atomic_write_text(out, _render_html(blocks, title)))
    else:
        folder = f"{out.stem}_files"
        text, files = _render_markdown(blocks, folder)
        for name, data in files.items():
            written.append(atomic_write(out.parent / folder / name,
                                        lambda tmp, data=data: tmp.write_bytes(data)))
        written.insert(0, atomic_write_text(out, text))
    written.append(atomic_write_json(out.with_suffix(".json"), _without_images(analysis)))
    return written
