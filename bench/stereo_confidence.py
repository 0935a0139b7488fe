"""What the confidence map and the left-right check cost, and how well they rank errors.

With the official KITTI 2015 weights on the shared real pairs (KITTI 2015, KITTI 2012,
Middlebury): per dataset, the sparsification curve's area (AUC: the mean EPE of the pixels
kept as 0-90% are dropped, least confident first; lower is better) for confidence radii 1, 2,
4 and 8 px, beside the oracle's (largest errors first), and the left-right check's share of
pixels kept with the EPE of the kept and of the dropped ones. Then the time of one KITTI-size
pair without and with the confidence map and with the left-right check, as ratios to the
plain run measured in the same process. Prints one JSON line.

    python bench/stereo_confidence.py --weights-root ../shared/weights [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

RADII = (1.0, 2.0, 4.0, 8.0)


def _median_time(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    from cnnlab.engine.memory import keep_freed_memory
    from cnnlab.engine.precision import inference_precision
    from cnnlab.stereo.data.datasets import open_dataset
    from cnnlab.stereo.inference.confidence import Sparsification, left_right_consistent
    from cnnlab.stereo.inference.methods import pair_outputs, psmnet_method
    from cnnlab.stereo.inference.predict import predict_views
    from cnnlab.stereo.weights.registry import load_model

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-root", required=True)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--datasets", nargs="+", default=["kitti2015", "kitti2012", "middlebury"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    model, card = load_model("psmnet-kitti2015", weights_root=args.weights_root)
    precision = inference_precision("auto", torch.device("cpu"))
    report = {"precision": precision, "threads": args.threads, "datasets": {}}
    for name in args.datasets:
        dataset = open_dataset(name, args.data_root, "all")
        curves = {radius: Sparsification() for radius in RADII}
        kept = kept_error = dropped_error = pixels = 0.0
        for index in range(len(dataset)):
            sample = dataset.load(index)
            valid = sample.valid
            outputs = {radius: pair_outputs(model, card, sample.left, sample.right, precision,
                                            confidence=radius) for radius in RADII}
            disparity = outputs[RADII[0]]["disparity"]
            error = np.abs(disparity - sample.disparity)[valid]
            for radius in RADII:
                curves[radius].add(error, outputs[radius]["confidence"][valid])
            mirrored = pair_outputs(model, card, np.ascontiguousarray(sample.right[:, ::-1]),
                                    np.ascontiguousarray(sample.left[:, ::-1]), precision)
            consistent = left_right_consistent(disparity,
                                               mirrored["disparity"][:, ::-1])[valid]
            kept += consistent.sum()
            kept_error += error[consistent].sum()
            dropped_error += error[~consistent].sum()
            pixels += valid.sum()
        result = {"pairs": len(dataset)}
        for radius in RADII:
            curve = curves[radius].curve()
            result[f"auc_r{radius:g}"] = round(curve["auc"], 4)
            result["oracle_auc"] = round(curve["oracle_auc"], 4)
            result["epe_all"] = round(curve["epe"][0], 4)
            if radius == 2.0:
                result["epe_drop10_r2"] = round(curve["epe"][2], 4)
                result["epe_drop50_r2"] = round(curve["epe"][10], 4)
        result["lr_kept_share"] = round(kept / pixels, 4)
        result["lr_epe_kept"] = round(kept_error / max(kept, 1), 4)
        result["lr_epe_dropped"] = round(dropped_error / max(pixels - kept, 1), 4)
        report["datasets"][name] = result
    sample = open_dataset("kitti2015", args.data_root, "all").load(0)
    plain = psmnet_method(model, card, precision, confidence_radius=None)
    rated = psmnet_method(model, card, precision)
    pair = (sample.left, sample.right)
    predict_views(plain, *pair)  # warm-up
    base = _median_time(lambda: predict_views(plain, *pair), args.repeats)
    with_confidence = _median_time(lambda: predict_views(rated, *pair), args.repeats)
    with_lr = _median_time(lambda: predict_views(rated, *pair, lr_check=True), args.repeats)
    report["timing"] = {"size": list(sample.left.shape[:2]), "plain_s": round(base, 3),
                        "confidence_ratio": round(with_confidence / base, 3),
                        "lr_check_ratio": round(with_lr / base, 3)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
