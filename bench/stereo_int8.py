"""PSMNet with its 3-D stage in int8 (eager-mode post-training static quantization, oneDNN/VNNI
through PyTorch's x86 engine) against fp32 and cnnlab's bf16: speed and accuracy, to decide
the issue "int8 inference, shipped only if it holds accuracy" (KITTI D1 within 0.1 point and
Middlebury bad-2 within 0.5 point of fp32 on the shared pairs, and faster than bf16).

What is int8: the 3-D stage from the cost volume to the classifiers' conv-BN-ReLU (cost_stem,
cost_residual, the three hourglasses, the classifiers' first conv), built from the BN-folded
float weights: per-channel symmetric qint8 weights, quint8 activations with scales from
calibration, ReLUs fused into the convs and the residual sums done in the quantized domain
(add / add_relu), so the stage stays in int8 from end to end. The features are quantized, not
the volume: the volume is built from their uint8 codes. The stride-2 transposed convs run as
regular int8 convs giving the 8 output parities as channels, then a depth-to-space shuffle
(``SubpixelDeconv``: PyTorch's quantized transposed conv is refused, wrong or slow here). The
classifiers' last 32 -> 1 convs (their weights in fp32, on the exact int8 codes), the sum of
the three costs and the soft-argmin are fp32; the 2-D feature extractor runs in
``--features-precision`` (bf16 by default where the CPU has it natively, as cnnlab's default
inference does).

Calibration: observers on the activations of the fused fp32 stage run on synthetic scenes
(cnnlab.stereo.data.synthetic, seeds and size in the JSON); with ``--calibrate-on-shared`` also
on the shared pairs themselves, a best case labelled as such (it has seen the test pairs).

Checks and figures:
- wiring: the float mirror of the stage equals ``PSMNet.aggregate_costs`` on a small crop, and
  the int8 stage's final cost and disparity against fp32 on it;
- speed: median latency of the whole forward at each size (KITTI 2015 000000 padded), fp32,
  bf16 (cnnlab's default here) and int8, each in a fresh process, warm-up first;
- accuracy: EPE / D1 on the KITTI 2015 (3) and KITTI 2012 (2) pairs, bad-2 / EPE on the 4
  Middlebury scenes, full size, official KITTI 2015 weights, per pair and aggregated, and the
  deltas against fp32 with the issue's thresholds.
Prints one JSON line, with a "decision".

    python bench/stereo_int8.py [--threads 2] [--sizes 384x1248] [--skip-accuracy]
        [--observer minmax|histogram] [--calibration-scenes 4] [--calibrate-on-shared]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from stereo_speed import _inputs, in_child  # that bench's pair and fresh-process runner

from cnnlab.engine.memory import keep_freed_memory
from cnnlab.engine.precision import float_precision, inference_autocast
from cnnlab.stereo.inference.int8 import (  # the library's int8 stage, measured here
    ENGINE,
    FloatStage,
    Int8Stage,
    aggregate,
    calibrate,
    last_convs,
    padded_pair,
    quantized_volume,
    synthetic_pairs,
)
from cnnlab.stereo.models.psmnet import PSMNet, precise_disparity_regression

# the quantized-tensor constructors warn that they are deprecated (PT2E, now in torchao, is
# their successor; not installed here): the eager-mode modules are what this torch offers
warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*")
warnings.filterwarnings("ignore", category=UserWarning, module="torch.ao")

WEIGHTS = "psmnet-kitti2015"
# the thresholds, in points of the percentage
D1_TOLERANCE, BAD2_TOLERANCE = 0.1, 0.5
DATASETS = {"kitti2015": "kitti2015-val", "kitti2012": "kitti2012-val",
            "middlebury": "middlebury"}  # dataset -> the protocol whose masks score it


# --- the whole forward with the int8 stage (the library's hook does the same) -----------

def int8_forward(model: PSMNet, stage: Int8Stage, left: torch.Tensor, right: torch.Tensor,
                 features_precision: str) -> torch.Tensor:
    """``PSMNet.forward`` at inference with the 3-D stage in int8: (B, 3, H, W) x2 -> (B, H,
    W) disparity."""
    height, width = left.shape[-2:]
    pad_h, pad_w = (-height) % 16, (-width) % 16
    left, right = (F.pad(x, (0, pad_w, 0, pad_h)).contiguous(memory_format=torch.channels_last)
                   for x in (left, right))
    with torch.no_grad():
        with inference_autocast(left.device, features_precision):
            features = [model.features(x) for x in (left, right)]
        cost = stage(*(f.float() for f in features))
        return precise_disparity_regression(cost, model.max_disparity, left.shape[-2:],
                                            model.config.align_corners, model.row_chunk
                                            )[:, :height, :width]


# --- calibration ----------------------------------------------------------------------------

def _padded_pair(sample, card, size: tuple[int, int] | None = None):
    return padded_pair(sample, card.preprocess, size)


def shared_pairs(card, data_root: str):
    from cnnlab.stereo.data.datasets import open_dataset

    for name in DATASETS:
        dataset = open_dataset(name, data_root, "all")
        for i in range(len(dataset)):
            yield _padded_pair(dataset.load(i), card)


def _calibration(queue, weights_root, data_root, threads, observer, count, size, seed,
                 features_precision, on_shared) -> None:
    """qparams (and what they were calibrated on) in a fresh process."""
    from cnnlab.stereo.weights.registry import load_model

    torch.set_num_threads(threads)
    keep_freed_memory()
    model, card = load_model(WEIGHTS, weights_root=weights_root)
    started = time.perf_counter()
    if on_shared:
        pairs = shared_pairs(card, data_root)
        what = "the shared pairs themselves (KITTI 2015, KITTI 2012, Middlebury; best case)"
    else:
        pairs = synthetic_pairs(card.preprocess, count, size, model.max_disparity, seed)
        what = (f"{count} synthetic scenes (cnnlab.stereo.data.synthetic, seed {seed}, "
                f"{size[0]}x{size[1]}, disparities up to "
                f"{0.75 * model.max_disparity:g} px)")
    qparams = calibrate(model, pairs, observer, features_precision)
    queue.put({"qparams": qparams, "on": what, "observer": observer,
               "seconds": round(time.perf_counter() - started, 1)})


# --- checks ---------------------------------------------------------------------------------

def _check(queue, weights_root, data_root, threads, qparams, size, max_disparity,
           features_precision) -> None:
    """On a crop of KITTI 2015 000000 at ``size`` with ``max_disparity``: the float mirror
    against ``aggregate_costs`` (wiring), and the int8 stage's cost and disparity against
    fp32's."""
    from cnnlab.stereo.data.datasets import open_dataset
    from cnnlab.stereo.weights.registry import load_model

    torch.set_num_threads(threads)
    model, card = load_model(WEIGHTS, weights_root=weights_root)
    model.set_max_disparity(max_disparity)
    sample = open_dataset("kitti2015", data_root, "all").load(0)
    left, right = (x.contiguous(memory_format=torch.channels_last)
                   for x in _padded_pair(sample, card, size))
    with torch.no_grad():
        features = [model.features(x) for x in (left, right)]
        reference = model.aggregate_costs(*features)[-1]
        mirror = FloatStage(model).costs(*features)
        stage = Int8Stage(model, qparams)
        int8 = stage(*features)
        disparity = model(left, right)["disparity"]
        disparity_int8 = int8_forward(model, stage, left, right, "fp32")
    error = (int8 - reference).abs()
    queue.put({
        "input": f"KITTI 2015 000000 cropped to {size[0]}x{size[1]}, max_disparity "
                 f"{max_disparity}, features fp32",
        "float_mirror_max_abs_diff_vs_aggregate_costs": float((mirror - reference).abs().max()),
        "cost_relative_l2_error": float((int8 - reference).norm() / reference.norm()),
        "cost_max_abs_diff": float(error.max()),
        "cost_mean_abs_diff": float(error.mean()),
        "cost_range_fp32": [float(reference.min()), float(reference.max())],
        "disparity_mean_abs_diff_px": float((disparity_int8 - disparity).abs().mean()),
        "disparity_max_abs_diff_px": float((disparity_int8 - disparity).abs().max()),
        "disparity_share_over_1px": float(((disparity_int8 - disparity).abs() > 1).float()
                                          .mean())})


# --- speed ----------------------------------------------------------------------------------

def _time(queue, precision, size, repeats, threads, weights_root, data_root, qparams,
          features_precision) -> None:
    """Median latency of the whole forward at ``size`` in ``precision`` (fp32, bf16: cnnlab's
    path; int8: this stage), in a process of its own."""
    from cnnlab.stereo.inference.methods import scaled_disparity
    from cnnlab.stereo.weights.registry import load_model

    torch.set_num_threads(threads)
    keep_freed_memory()
    model, _ = load_model(WEIGHTS, weights_root=weights_root)
    left, right = _inputs(size, torch.device("cpu"), (weights_root, data_root))
    if precision == "int8":
        stage = Int8Stage(model, qparams)

        def run():
            return int8_forward(model, stage, left, right, features_precision)
    else:
        def run():
            return scaled_disparity(model, left, right, model.max_disparity, precision)
    times = []
    with torch.inference_mode():
        run()  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
    queue.put({"seconds": round(statistics.median(times), 3),
               "all_seconds": [round(t, 3) for t in times]})


def _stage_breakdown(queue, size, repeats, threads, weights_root, data_root, qparams,
                     features_precision) -> None:
    """Median seconds of the int8 path's parts at ``size`` (after a warm-up run): features,
    volume, int8 convs and sums, last convs, regression."""
    from cnnlab.stereo.weights.registry import load_model

    torch.set_num_threads(threads)
    keep_freed_memory()
    model, _ = load_model(WEIGHTS, weights_root=weights_root)
    left, right = (x.contiguous(memory_format=torch.channels_last)
                   for x in _inputs(size, torch.device("cpu"), (weights_root, data_root)))
    stage = Int8Stage(model, qparams)
    names = ("features", "volume", "int8_3d_convs_and_sums", "last_convs_fp32", "regression")
    parts: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for run in range(repeats + 1):  # the first run warms up
            stamps = [time.perf_counter()]
            with inference_autocast(left.device, features_precision):
                features = [model.features(x).float() for x in (left, right)]
            stamps.append(time.perf_counter())
            volume = quantized_volume(*features, model.max_disparity // 4,
                                      *qparams["volume"])
            stamps.append(time.perf_counter())
            scored = aggregate(stage, volume)
            stamps.append(time.perf_counter())
            cost = last_convs(scored, stage.last)
            stamps.append(time.perf_counter())
            precise_disparity_regression(cost, model.max_disparity, left.shape[-2:],
                                         model.config.align_corners, model.row_chunk)
            stamps.append(time.perf_counter())
            for name, start, stop in zip(names, stamps, stamps[1:]):
                if run:
                    parts[name].append(stop - start)
    queue.put({name: round(statistics.median(times), 3) for name, times in parts.items()})


# --- accuracy -------------------------------------------------------------------------------

def _accuracy(queue, precision, weights_root, data_root, threads, qparams,
              features_precision) -> None:
    """Per-pair and aggregated figures of ``precision`` on the shared pairs, full size."""
    from cnnlab.stereo.data.datasets import open_dataset
    from cnnlab.stereo.evaluation.evaluate import evaluate_samples
    from cnnlab.stereo.evaluation.protocols import get_protocol
    from cnnlab.stereo.inference.methods import psmnet_method
    from cnnlab.stereo.weights.registry import load_model

    torch.set_num_threads(threads)
    keep_freed_memory()
    model, card = load_model(WEIGHTS, weights_root=weights_root)
    if precision == "int8":
        stage = Int8Stage(model, qparams)

        def predict(sample):
            left, right = _padded_pair(sample, card)
            height, width = sample.left.shape[:2]
            disparity = int8_forward(model, stage, left, right, features_precision)
            disparity = disparity[0, :height, :width].numpy()
            return disparity, torch.ones(disparity.shape, dtype=torch.bool).numpy()
    else:
        predict = psmnet_method(model, card, precision, 1.0, confidence_radius=None)
    results = {}
    for name, protocol in DATASETS.items():
        dataset = open_dataset(name, data_root, "all")
        samples = (dataset.load(i) for i in range(len(dataset)))
        scored = evaluate_samples(predict, samples, masks=get_protocol(protocol).masks)
        per_pair = {row["name"]: {region: _figures(row[region])
                                  for region in scored["aggregate"]
                                  if row.get(region, {}).get("pixels")}
                    for row in scored["per_image"]}
        results[name] = {
            "aggregate": {region: _figures(figures)
                          for region, figures in scored["aggregate"].items()},
            "mean_of_pairs": {region: {key: round(statistics.mean(
                                  pair[region][key] for pair in per_pair.values()
                                  if region in pair), 4) for key in FIGURES}
                              for region in scored["aggregate"]},
            "per_pair": per_pair}
    queue.put(results)


FIGURES = ("epe", "d1", "bad2", "bad3")


def _figures(figures: dict) -> dict:
    return {key: round(figures[key], 4) for key in FIGURES}


def _deltas(accuracy: dict[str, dict], against: str = "fp32") -> dict:
    """Each precision's change against fp32 on every dataset and region, aggregated and per
    pair, in px (EPE) and points (D1, bad-2, bad-3)."""
    base = accuracy[against]
    out = {}
    for precision, results in accuracy.items():
        if precision == against:
            continue
        out[precision] = {}
        for dataset, result in results.items():
            def delta(a, b):
                return {k: round(a[k] - b[k], 4) for k in a}

            out[precision][dataset] = {
                "aggregate": {r: delta(f, base[dataset]["aggregate"][r])
                              for r, f in result["aggregate"].items()},
                "mean_of_pairs": {r: delta(f, base[dataset]["mean_of_pairs"][r])
                                  for r, f in result["mean_of_pairs"].items()},
                "per_pair": {p: {r: delta(f, base[dataset]["per_pair"][p][r])
                                 for r, f in regions.items()}
                             for p, regions in result["per_pair"].items()}}
    return out


def thresholds(deltas: dict) -> dict:
    """The issue's conditions on the aggregated figures (all-pixels region): |D1 change| <=
    0.1 point on each KITTI set, |bad-2 change| <= 0.5 point on Middlebury; also the worst
    per-pair change, for reading."""
    checks = {}
    for dataset, metric, tolerance in (("kitti2015", "d1", D1_TOLERANCE),
                                       ("kitti2012", "d1", D1_TOLERANCE),
                                       ("middlebury", "bad2", BAD2_TOLERANCE)):
        change = deltas[dataset]["aggregate"]["all"][metric]
        worst = max((regions["all"][metric] for regions in deltas[dataset]["per_pair"].values()),
                    key=abs)
        checks[dataset] = {"metric": metric, "change_points": change,
                           "tolerance_points": tolerance, "holds": abs(change) <= tolerance,
                           "worst_pair_change_points": worst}
    return checks


# --- main -----------------------------------------------------------------------------------

def _size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.split("x"))
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["384x1248"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--weights-root", default="../shared/weights",
                        help="folder holding PSMNet/pretrained_model_KITTI2015.tar")
    parser.add_argument("--data-root", default="../shared/data",
                        help="folder holding KITTI2015/, KITTI2012/, Middlebury/")
    parser.add_argument("--observer", choices=("minmax", "histogram"), default="minmax")
    parser.add_argument("--calibration-scenes", type=int, default=4)
    parser.add_argument("--calibration-size", default="256x512")
    parser.add_argument("--calibration-seed", type=int, default=1)
    parser.add_argument("--calibrate-on-shared", action="store_true",
                        help="also calibrate on the shared pairs themselves (a best case)")
    parser.add_argument("--features-precision", choices=("fp32", "bf16"),
                        help="the 2-D feature extractor's precision in the int8 path "
                             "(default: bf16 where native, as cnnlab's inference)")
    parser.add_argument("--check-size", default="128x256")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    cpu = torch.device("cpu")
    low = float_precision(cpu)  # cnnlab's default inference here
    features_precision = args.features_precision or low
    roots = (args.weights_root, args.data_root)
    calibrations = {"synthetic": in_child(
        _calibration, *roots, args.threads, args.observer, args.calibration_scenes,
        _size(args.calibration_size), args.calibration_seed, features_precision, False)}
    if args.calibrate_on_shared:
        calibrations["shared_best_case"] = in_child(
            _calibration, *roots, args.threads, args.observer, 0, None, 0, features_precision,
            True)
    qparams = calibrations["synthetic"]["qparams"]
    check_size = _size(args.check_size)
    check_range = max(16, check_size[1] // 4 // 16 * 16)  # a range the crop can hold
    report = {"bench": "stereo_int8", "device": "cpu", "threads": args.threads,
              "engine": ENGINE, "torch": torch.__version__, "weights": WEIGHTS,
              "int8_path": "3-D stage int8 (per-channel qint8 weights, quint8 activations, "
                           "transposed convs as 2x2x2 convs + depth-to-space); the "
                           "classifiers' last convs, the cost sum and the soft-argmin fp32; "
                           f"features in {features_precision}",
              # other work on the machine slows every path, not necessarily alike
              "load_average_1min_at_start": round(os.getloadavg()[0], 2),
              "calibration": {name: {k: v for k, v in c.items() if k != "qparams"}
                              for name, c in calibrations.items()},
              "check": in_child(_check, *roots, args.threads, qparams, check_size, check_range,
                                features_precision)}
    if not args.skip_speed:
        report["speed"] = {}
        for text in args.sizes:
            size = _size(text)
            seconds = {precision: in_child(_time, precision, size, args.repeats, args.threads,
                                           *roots, qparams, features_precision)
                       for precision in dict.fromkeys(("fp32", low, "int8"))}
            entry = dict(seconds)
            entry["int8_speedup_vs_fp32"] = round(seconds["fp32"]["seconds"]
                                                  / seconds["int8"]["seconds"], 3)
            entry[f"int8_speedup_vs_{low}"] = round(seconds[low]["seconds"]
                                                    / seconds["int8"]["seconds"], 3)
            entry["int8_parts_seconds"] = in_child(_stage_breakdown, size, args.repeats,
                                                   args.threads, *roots, qparams,
                                                   features_precision)
            report["speed"][text] = entry
    decision_reasons = []
    if not args.skip_accuracy:
        accuracy = {precision: in_child(_accuracy, precision, *roots, args.threads, qparams,
                                        features_precision)
                    for precision in dict.fromkeys(("fp32", low, "int8"))}
        for name, calibration in calibrations.items():
            if name != "synthetic":
                accuracy[f"int8_{name}"] = in_child(_accuracy, "int8", *roots, args.threads,
                                                    calibration["qparams"],
                                                    features_precision)
        deltas = _deltas(accuracy)
        report["accuracy"] = accuracy
        report["deltas_vs_fp32"] = deltas
        report["thresholds"] = {name: thresholds(d) for name, d in deltas.items()}
        failed = [f"{dataset} {c['metric']} changes by {c['change_points']:+.3f} points "
                  f"(tolerance {c['tolerance_points']})"
                  for dataset, c in report["thresholds"]["int8"].items() if not c["holds"]]
        decision_reasons += failed
    if not args.skip_speed:
        for text, entry in report["speed"].items():
            if entry[f"int8_speedup_vs_{low}"] <= 1:
                decision_reasons.append(f"at {text} int8 is not faster than {low} "
                                        f"({entry['int8']['seconds']} vs "
                                        f"{entry[low]['seconds']} s)")
    report["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    measured_all = not (args.skip_speed or args.skip_accuracy)
    if decision_reasons:
        report["decision"] = "do not ship: " + "; ".join(decision_reasons)
    else:
        report["decision"] = ("ship" if measured_all else
                              "undecided: speed or accuracy was skipped")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
