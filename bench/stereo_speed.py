"""PSMNet inference: cnnlab's implementation vs. the reference's layer order, same weights.

The reference path is a straightforward re-implementation of the published forward pass: cost
volume filled by a Python loop over disparities, conv and BN as separate layers, and the cost
upsampled trilinearly to full (D, H, W) before softmax and regression in one go, all in
PyTorch's default memory layout. cnnlab's path builds the volume in one pass directly in
channels_last_3d, runs the convolutions channels-last, folds BN into them and regresses row
chunk by row chunk. Same weights, same input, same run: latencies are timed in one process with
the two implementations interleaved; peak memory (max RSS growth on CPU, max allocated on CUDA)
is measured for each in a fresh process. Prints one JSON line with latencies, peak memory, the
ratios and the largest output difference.

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
    features_left = model.features(left)
    features_right = model.features(right)
    volume = build_concat_volume_loop(features_left, features_right, model.max_disparity // 4)
    cost = model.aggregate_costs(volume.contiguous())[-1]
    cost = F.interpolate(cost, (model.max_disparity, left.shape[2], left.shape[3]),
                         mode="trilinear",
                         align_corners=model.config.align_corners).squeeze(1)
    probabilities = F.softmax(cost, dim=1)
    disparities = torch.arange(model.max_disparity, dtype=cost.dtype, device=cost.device)
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


def _inputs(size: tuple[int, int], device: torch.device):
    generator = torch.Generator().manual_seed(1)
    left = torch.randn(1, 3, *size, generator=generator)
    right = torch.roll(left, -7, dims=3) + 0.1 * torch.randn(1, 3, *size, generator=generator)
    return left.to(device), right.to(device)


def _runner(implementation: str, model: PSMNet, left, right):
    """A closure running one implementation; ours fuses BN, the reference keeps the default
    memory layout for every weight (as the published code has it)."""
    if implementation == "ours":
        model.fuse_for_inference()
        return lambda: model(left, right)["disparity"]
    for parameter in model.parameters():
        parameter.data = parameter.data.contiguous()
    return lambda: reference_forward(model, left, right)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_both(queue, size, repeats, device_name, threads) -> None:
    """Latency of both implementations in one process, runs interleaved (same conditions)."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    left, right = _inputs(size, device)
    runs = {name: _runner(name, _make_model(device, seed=0), left, right)
            for name in ("ours", "reference")}
    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    with torch.inference_mode():
        for name, run in runs.items():  # warm-up
            outputs[name] = run().float().cpu().numpy()
        for _ in range(repeats):
            for name, run in runs.items():
                _sync(device)
                started = time.perf_counter()
                run()
                _sync(device)
                times[name].append(time.perf_counter() - started)
    queue.put({"seconds": {k: statistics.median(v) for k, v in times.items()},
               "difference": float(abs(outputs["ours"] - outputs["reference"]).max())})


def _peak_memory(queue, implementation, size, device_name, threads) -> None:
    """Peak memory of one inference in a fresh process (max RSS growth on CPU, max allocated
    on CUDA)."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    left, right = _inputs(size, device)
    run = _runner(implementation, _make_model(device, seed=0), left, right)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        run()
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # ru_maxrss is in KiB on Linux: what inference added on top of the model
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) / 1024
    queue.put(peak_mb)


def in_child(target, *args):
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(queue, *args))
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
              "max_disparity": 192, "repeats": args.repeats, "sizes": {}}
    for text in args.sizes:
        size = tuple(int(v) for v in text.split("x"))
        timing = in_child(_time_both, size, args.repeats, args.device, args.threads)
        ours_mb = in_child(_peak_memory, "ours", size, args.device, args.threads)
        reference_mb = in_child(_peak_memory, "reference", size, args.device, args.threads)
        seconds = timing["seconds"]
        report["sizes"][text] = {
            "ours_seconds": round(seconds["ours"], 3),
            "reference_seconds": round(seconds["reference"], 3),
            "speedup": round(seconds["reference"] / seconds["ours"], 3),
            "ours_peak_mb": round(ours_mb, 1),
            "reference_peak_mb": round(reference_mb, 1),
            "peak_memory_ratio": round(ours_mb / max(reference_mb, 1e-9), 3),
            "max_abs_output_difference": timing["difference"],
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
