"""Evaluate PSMNet or SGBM on stereo pairs: EPE, D1, bad-1/2/3 on all / non-occluded pixels.

Per image and aggregated as KITTI does (error and pixel counts summed over the dataset). SGBM
holes are filled by KITTI's background interpolation before scoring, so they count as errors
where the fill is wrong, and the density of real SGBM output is reported.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.stereo.data.datasets import (
    StereoDataset,
    StereoSample,
)
from cnnlab.stereo.data.registry import open_pairs
from cnnlab.stereo.evaluation.metrics import rates, region_counts
from cnnlab.stereo.inference.methods import Outputs, outputs_of
from cnnlab.stereo.inference.sgbm import check_range

# a Method, or any function of a sample giving Outputs or (disparity, valid)
Predictor = Callable[[StereoSample], Outputs | tuple[np.ndarray, np.ndarray]]


def open_sources(datasets: list[str], data_root: str | None, split: str, count: int,
                 synthetic_size: tuple[int, int], folder: dict | None = None,
                 protocol=None) -> dict[str, StereoDataset | None]:
    """What eval and report score, opened and checked before a model is loaded: each named
    dataset's ``split`` (an empty one refused, naming the protocol's published split when
    ``protocol`` chose it). Synthetic scenes are drawn within the model's range, so they stay
    None here until ``finish_sources``."""
    sources: dict[str, StereoDataset | None] = {}
    for dataset in datasets:
        if dataset == "synthetic":
            sources[dataset] = None
            continue
        sources[dataset] = open_pairs(dataset, split, data_root=data_root, folder=folder)
        if len(sources[dataset]) == 0:
            hint = (f"; pass `split` all to score the pairs there (not {protocol.name}'s "
                    "published split)" if protocol else "")
            raise ConfigError(f"{split}: no {dataset} pairs in that split under "
                              f"{data_root}{hint}", parameter="split")
    return sources


def finish_sources(sources: dict[str, StereoDataset | None], methods: dict[str, Predictor],
                   max_disparity: int, split: str, count: int,
                   synthetic_size: tuple[int, int]) -> dict[str, StereoDataset]:
    """``sources`` with the synthetic scenes drawn within ``max_disparity``, every dataset
    checked against the ``methods`` (SGBM's range) before any is scored."""
    if "synthetic" in sources:
        sources["synthetic"] = open_pairs("synthetic", split, count=count,
                                          synthetic_size=synthetic_size,
                                          max_disparity=max_disparity)
    for source in sources.values():
        check_methods(methods, source, max_disparity)
    return sources  # type: ignore[return-value]


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
        outputs = outputs_of(predict(sample))
        disparity, valid_prediction = outputs["disparity"], outputs["valid"]
        density = float(valid_prediction.mean())
        density_sum += density
        _, scored = region_counts(disparity, valid_prediction, sample.disparity,
                                  masks(sample))
        row = {"name": sample.name, "density": density}
        for region, counts in scored.items():
            region_totals = totals.setdefault(region, {})
            for key, value in counts.items():
                region_totals[key] = region_totals.get(key, 0.0) + value
            # a region with no pixel in this pair has no rates: they would read as a perfect 0
            row[region] = ((rates(counts) if counts["pixels"] else {})
                           | {"pixels": int(counts["pixels"])})
        rows.append(row)
        if log:
            first = next(iter(scored), None)  # the pair's first region (all pixels)
            if first is None or not row[first]["pixels"]:
                log(f"  [{len(rows)}] {sample.name}: no pixel with ground truth to score"
                    + (f" in {first}" if first else ""))
                continue
            so_far = rates(totals[first])
            log(f"  [{len(rows)}] {sample.name}: EPE {row[first]['epe']:.3f} px, "
                f"D1 {row[first]['d1']:.2f}%, density {100 * density:.1f}% | {first} so far: "
                f"EPE {so_far['epe']:.3f} px, D1 {so_far['d1']:.2f}%")
    # a region no pair has a pixel of (KITTI's cars where none are in view) is left out: its
    # rates would read as a perfect 0
    summary = {region: rates(counts) | {"pixels": int(counts["pixels"])}
               for region, counts in totals.items() if counts["pixels"]}
    for region in summary:
        per_image = [r[region] for r in rows if region in r and r[region]["pixels"]]
        summary[region]["mean_per_image_epe"] = float(np.mean([m["epe"] for m in per_image]))
        summary[region]["mean_per_image_d1"] = float(np.mean([m["d1"] for m in per_image]))
    return {"images": len(rows), "density": density_sum / max(len(rows), 1),
            "aggregate": summary, "per_image": rows}


def format_table(results: dict[str, dict]) -> str:
    """Rows = (dataset, method); columns = EPE / D1 / bad-1/2/3 on all pixels, density."""
    lines = [f"{'dataset':<12} {'method':<10} {'pairs':>5} {'EPE':>7} {'D1%':>7} {'bad1%':>7} "
             f"{'bad2%':>7} {'bad3%':>7} {'density':>8}"]
    for key, result in results.items():
        dataset, method = key.split("/", 1)
        agg = result["aggregate"].get("all")
        if agg is None:  # no pair had a pixel with ground truth: nothing to show as a score
            lines.append(f"{dataset:<12} {method:<10} {result['images']:>5}   no pixel with "
                         "ground truth to score")
            continue
        lines.append(f"{dataset:<12} {method:<10} {result['images']:>5} {agg['epe']:>7.3f} "
                     f"{agg['d1']:>7.2f} {agg['bad1']:>7.2f} {agg['bad2']:>7.2f} "
                     f"{agg['bad3']:>7.2f} {100 * result['density']:>7.1f}%")
    return "\n".join(lines)


def one_at_a_time(source: StereoDataset):
    """The pairs of ``source``, read as they are consumed: one pair in memory at a time (a
    function, so that each generator keeps its own dataset)."""
    return (source.load(i) for i in range(len(source)))


def score_sources(sources: dict[str, StereoDataset], methods: dict[str, Predictor],
                  masks: Callable[[StereoSample], dict[str, np.ndarray]] = default_masks,
                  log: Callable[[str], None] | None = None,
                  headings: dict[str, str] | None = None) -> dict[str, dict]:
    """``evaluate_samples`` of every method on every dataset, keyed "dataset/method";
    ``headings`` adds a method's settings to the line logged before its pairs."""
    results = {}
    for dataset, source in sources.items():
        for method, predict in methods.items():
            if log:
                log(f"{dataset} / {method}{(headings or {}).get(method, '')}:")
            results[f"{dataset}/{method}"] = evaluate_samples(predict, one_at_a_time(source),
                                                              log, masks)
    return results
