"""PSMNet inference: cnnlab's implementation vs. the reference's layer order, same weights.

The reference path is a straightforward re-implementation of the published forward pass:
cost volume filled by a Python loop over disparities, conv and BN as separate layers, and the
cost upsampled trilinearly to full (D, H, W) before softmax and regression in one go. cnnlab's
path builds the volume in one pass, folds BN into the convolutions and regresses row chunk by
row chunk. Both run the same weights on the same input in the same run; each measurement runs in
a fresh process so peak memory (max RSS on CPU, max allocated on CUDA) is its own. Prints one
JSON line with latencies, peak memory, the ratios and the largest output difference.

    python bench/stereo_speed.py --sizes 256x512 384x1248
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time

import torch
import torch.nn.functional as F

from cnnlab.stereo.models import PSMNet
from cnnlab.stereo.models.cost_volume import build_concat_volume_loop


def reference_forward(model: PSMNet, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """The published eval-mode forward pass, step by step, on ``model``'s (unfused) layers."""
    features_left = model.feature_extraction(left)
    features_right = model.feature_extraction(right)
    volume = build_concat_volume_loop(features_left, features_right, model.maxdisp // 4)
    cost = model._costs(volume.contiguous())[-1]
    cost = F.interpolate(cost, (model.maxdisp, left.shape[2], left.shape[3]), mode="trilinear",
                         align_corners=model.config.align_corners).squeeze(1)
    probabilities = F.softmax(cost, dim=1)
    disparities = torch.arange(model.maxdisp, dtype=cost.dtype, device=cost.device)
    return torch.sum(probabilities * disparities.view(1, -1, 1, 1), dim=1)


def _make_model(device: torch.device, seed: int) -> PSMNet:
    torch.manual_seed(seed)
    model = PSMNet().to(device)
    model.train()  # realistic BN statistics: a few forward passes on random data
    with torch.no_grad():
        for _ in range(2):
            x = torch.randn(1, 3, 64, 128, device=device)
            model(x, x)
    return model.eval()


def _measure(queue, implementation: str, size: tuple[int, int], repeats: int, device_name: str,
             threads: int) -> None:
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    model = _make_model(device, seed=0)
    generator = torch.Generator().manual_seed(1)
    left = torch.randn(1, 3, *size, generator=generator).to(device)
    right = torch.roll(left, -7, dims=3) + 0.1 * torch.randn(1, 3, *size, generator=generator
                                                             ).to(device)
    if implementation == "ours":
        model.fuse_for_inference()

        def run():
            return model(left, right)
    else:
        def run():
            return reference_forward(model, left, right)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.inference_mode():
        output = run()  # warm-up
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            output = run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - started)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # ru_maxrss is in KiB on Linux; count what inference added on top of the model
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) / 1024
    queue.put({"seconds": statistics.median(times), "peak_mb": peak_mb,
               "output": output.float().cpu()})


def measure(implementation, size, repeats, device, threads):
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure,
                              args=(queue, implementation, size, repeats, device, threads))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["256x512", "384x1248"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    report = {"bench": "stereo_speed", "device": args.device, "threads": args.threads,
              "maxdisp": 192, "repeats": args.repeats, "sizes": {}}
    for text in args.sizes:
        size = tuple(int(v) for v in text.split("x"))
        ours = measure("ours", size, args.repeats, args.device, args.threads)
        reference = measure("reference", size, args.repeats, args.device, args.threads)
        report["sizes"][text] = {
            "ours_seconds": round(ours["seconds"], 3),
            "reference_seconds": round(reference["seconds"], 3),
            "speedup": round(reference["seconds"] / ours["seconds"], 3),
            "ours_peak_mb": round(ours["peak_mb"], 1),
            "reference_peak_mb": round(reference["peak_mb"], 1),
            "peak_memory_ratio": round(ours["peak_mb"] / max(reference["peak_mb"], 1e-9), 3),
            "max_abs_output_difference": float((ours["output"] - reference["output"])
                                               .abs().max()),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
