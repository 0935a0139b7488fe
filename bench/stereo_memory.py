"""Peak memory of PSMNet inference against cnnlab's estimate (stereo.budget), per size.

Each size runs in a fresh process (random weights: memory does not depend on them), with
cnnlab's allocator setting, and reports the peak resident memory growth over the loaded model
(the kernel's high-water mark reset before inference: engine.memory.peak_growth_mb). Prints one
JSON line: per size the measured and estimated MB and their ratio.

    python bench/stereo_memory.py [--sizes 256x512 384x1248 ...] [--precisions fp32 bf16]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from stereo_speed import in_child  # that bench's fresh-process runner


def _peak(queue, height: int, width: int, max_disparity: int, precision: str, threads: int,
          tile: tuple[int, int] | None) -> None:
    from cnnlab.engine.memory import keep_freed_memory, peak_growth_mb
    from cnnlab.engine.precision import inference_autocast
    from cnnlab.stereo.inference.tiling import tiled_forward
    from cnnlab.stereo.models.psmnet import PSMNet

    torch.set_num_threads(threads)
    keep_freed_memory()
    model = PSMNet(max_disparity=max_disparity).eval().fuse_for_inference()
    left, right = torch.randn(1, 3, height, width), torch.randn(1, 3, height, width)
    with torch.no_grad(), inference_autocast(torch.device("cpu"), precision):
        queue.put(peak_growth_mb(lambda: model(left, right) if tile is None
                                 else tiled_forward(model, left, right, tile)))


def measure_peak_mb(height: int, width: int, max_disparity: int = 192,
                    precision: str = "fp32", threads: int = 2,
                    tile: tuple[int, int] | None = None) -> float:
    """Peak resident memory growth (MB) of one inference, in a fresh process."""
    return in_child(_peak, height, width, max_disparity, precision, threads, tile)


def main() -> None:
    from cnnlab.stereo.inference.budget import estimate_peak_mb, tile_for_budget

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["256x512", "384x1248", "544x960"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--max-disparity", type=int, default=192)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--tiled", nargs="*", default=[], metavar="HxW:MB",
                        help="also run this size on the tiles picked for this budget")
    parser.add_argument("--weights-root", help="folder holding PSMNet/pretrained_model_"
                                               "KITTI2015.tar: adds the tiling accuracy")
    parser.add_argument("--data-root", default="../shared/data")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        height, width = (int(v) for v in size.split("x"))
        for precision in args.precisions:
            measured = measure_peak_mb(height, width, args.max_disparity, precision,
                                       args.threads)
            estimated = estimate_peak_mb(height, width, args.max_disparity, precision)
            rows.append({"size": size, "precision": precision, "measured_mb": round(measured),
                         "estimated_mb": round(estimated),
                         "estimate_over_measured": round(estimated / measured, 3)})
    report = {"max_disparity": args.max_disparity, "threads": args.threads, "rows": rows}
    for spec in args.tiled:
        size, budget = spec.split(":")
        height, width = (int(v) for v in size.split("x"))
        precision = args.precisions[-1]
        tile = tile_for_budget(height, width, args.max_disparity, precision, float(budget))
        started = time.perf_counter()
        measured = measure_peak_mb(height, width, args.max_disparity, precision, args.threads,
                                   tile)
        report.setdefault("tiled", []).append({
            "size": size, "precision": precision, "budget_mb": float(budget),
            "tile": list(tile) if tile else None, "measured_mb": round(measured),
            "untiled_estimate_mb": round(estimate_peak_mb(height, width, args.max_disparity,
                                                          precision)),
            "seconds_with_process_start": round(time.perf_counter() - started, 1)})
    if args.weights_root:
        report["tiling_accuracy"] = tiling_accuracy(args.weights_root, args.data_root,
                                                    args.threads)
    print(json.dumps(report))


def tiling_accuracy(weights_root: str, data_root: str, threads: int) -> dict:
    """EPE of the official KITTI 2015 weights on the shared KITTI 2015 pairs, whole and on
    tiles, and the largest per-pixel change tiling makes."""
    import numpy as np

    from cnnlab.engine.precision import inference_precision
    from cnnlab.stereo.data.datasets import open_dataset
    from cnnlab.stereo.inference.methods import pair_outputs
    from cnnlab.stereo.weights.registry import load_model

    torch.set_num_threads(threads)
    model, card = load_model("psmnet-kitti2015", weights_root=weights_root)
    precision = inference_precision("auto", torch.device("cpu"))
    dataset = open_dataset("kitti2015", data_root, "all")
    tiles = {"whole": None, "columns 384x768": (384, 768), "columns 384x640": (384, 640),
             "strips 320 rows": (320, 100_000), "strips 192 rows": (192, 100_000)}
    error = dict.fromkeys(tiles, 0.0)
    change = dict.fromkeys(tiles, 0.0)
    pixels = 0
    for index in range(len(dataset)):
        sample = dataset.load(index)
        outputs = {name: pair_outputs(model, card, sample.left, sample.right, precision,
                                      tile=tile)["disparity"] for name, tile in tiles.items()}
        for name, disparity in outputs.items():
            error[name] += float(np.abs(disparity - sample.disparity)[sample.valid].sum())
            change[name] = max(change[name],
                               float(np.abs(disparity - outputs["whole"]).max()))
        pixels += int(sample.valid.sum())
    return {"precision": precision, "pairs": len(dataset),
            "epe": {name: round(total / pixels, 4) for name, total in error.items()},
            "max_change_px": {name: round(value, 3) for name, value in change.items()}}


if __name__ == "__main__":
    main()
