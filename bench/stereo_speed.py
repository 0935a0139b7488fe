"""PSMNet inference: cnnlab's implementation (fp32 and, where the device runs it natively, bf16
autocast) vs. the reference's layer order, same weights.

The reference path is a straightforward re-implementation of the published forward pass: cost
volume filled by a Python loop over disparities, conv and BN as separate layers, and the cost
upsampled trilinearly to full (D, H, W) before softmax and regression in one go, all in
PyTorch's default memory layout. cnnlab's path builds the volume in one pass directly in
channels_last_3d, runs the convolutions channels-last, folds BN into them and regresses row
chunk by row chunk, with glibc keeping freed memory for reuse (engine.memory, as cnnlab's
inference commands run). Same weights, same input: latencies are timed in one process with the
implementations interleaved, except the reference as the published code runs (glibc's default
allocator), timed in a process of its own; reference_kept is the reference path with cnnlab's
allocator setting. Peak memory (max RSS growth on CPU, max allocated on CUDA)
is measured for each in a fresh process. The convolution FLOPs of one forward pass are counted
(torch's FlopCounterMode) and set against a large matrix product's rate measured in the same
run, in fp32 and bf16: the fraction of the library's best rate each path reaches. With the
official KITTI 2015 weights present (``--weights-root``), EPE and D1 on the shared KITTI 2015
pairs are measured in fp32 and bf16. Prints one JSON line.

    python bench/stereo_speed.py --sizes 256x512 384x1248 --weights-root ../shared/weights
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.engine.memory import keep_freed_memory
from cnnlab.engine.precision import native_precisions
from cnnlab.stereo.inference.methods import FAST_SCALE, scaled_disparity
from cnnlab.stereo.models import PSMNet
from cnnlab.stereo.models.cost_volume import build_concat_volume_loop


def _reference_hourglass(hourglass, x, presqu, postsqu):
    """The published hourglass forward on ``hourglass``'s layers (sums out of place)."""
    out = hourglass.conv2(hourglass.conv1(x))
    pre = F.relu(out + postsqu if postsqu is not None else out, inplace=True)
    out = hourglass.conv4(hourglass.conv3(pre))
    post = F.relu(hourglass.conv5(out) + (presqu if presqu is not None else pre), inplace=True)
    return hourglass.conv6(post), pre, post


def _reference_classifier(classifier, x):
    """conv-BN-ReLU then the published 32 -> 1 conv3d (not cnnlab's decomposition)."""
    last = classifier[2]
    return F.conv3d(classifier[1](classifier[0](x)), last.weight, padding=1)


def reference_forward(model: PSMNet, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """The published eval-mode forward pass, step by step, on ``model``'s (unfused) layers."""
    features_left = model.features(left)
    features_right = model.features(right)
    volume = build_concat_volume_loop(features_left, features_right, model.max_disparity // 4)
    cost0 = model.cost_stem(volume.contiguous())
    cost0 = model.cost_residual(cost0) + cost0
    out1, pre1, post1 = _reference_hourglass(model.hourglasses[0], cost0, None, None)
    out1 = out1 + cost0
    out2, _, post2 = _reference_hourglass(model.hourglasses[1], out1, pre1, post1)
    out2 = out2 + cost0
    out3, _, _ = _reference_hourglass(model.hourglasses[2], out2, pre1, post2)
    out3 = out3 + cost0
    cost1 = _reference_classifier(model.classifiers[0], out1)
    cost2 = _reference_classifier(model.classifiers[1], out2) + cost1
    cost = _reference_classifier(model.classifiers[2], out3) + cost2
    cost = F.interpolate(cost, (model.max_disparity, left.shape[2], left.shape[3]),
                         mode="trilinear",
                         align_corners=model.config.align_corners).squeeze(1)
    probabilities = F.softmax(cost, dim=1)
    disparities = torch.arange(model.max_disparity, dtype=cost.dtype, device=cost.device)
    return torch.sum(probabilities * disparities.view(1, -1, 1, 1), dim=1)


# where the timed model and pair come from: the official KITTI 2015 weights and the shared
# pair 000000 when --weights-root is given (then bf16's output difference means something),
# else random weights with realistic BN statistics and a random pair
Source = tuple  # (weights_root or None, data_root)


def _make_model(device: torch.device, source: Source) -> PSMNet:
    weights_root, _ = source
    if weights_root:
        from cnnlab.engine.checkpoint import load_model_weights
        from cnnlab.stereo.weights.registry import build_stereo_model, load_weights

        state, card = load_weights("psmnet-kitti2015", weights_root)
        model = build_stereo_model(card, card.source["file"])
        load_model_weights(model, state, Path(card.source["file"]))
        return model.to(device).eval()
    torch.manual_seed(0)
    model = PSMNet().to(device)
    model.train()  # realistic BN statistics: a few forward passes on random data
    with torch.no_grad():
        for _ in range(2):
            x = torch.randn(1, 3, 64, 128, device=device)
            model(x, x)
    return model.eval()


def _inputs(size: tuple[int, int], device: torch.device, source: Source):
    """A pair of ``size``: KITTI 2015 000000 cropped from the bottom left or padded with the
    mean colour (zeros after normalising, as the network pads), else random."""
    weights_root, data_root = source
    if weights_root:
        from cnnlab.stereo.data.datasets import open_dataset
        from cnnlab.stereo.data.preprocess import IMAGENET_PREPROCESS, to_input

        sample = open_dataset("kitti2015", data_root, "all").load(0)
        mean, std = IMAGENET_PREPROCESS["mean"], IMAGENET_PREPROCESS["std"]
        pair = []
        for image in (sample.left, sample.right):
            x = to_input(image, device, mean, std)[..., -size[0]:, :size[1]]
            pair.append(F.pad(x, (0, size[1] - x.shape[3], 0, size[0] - x.shape[2])))
        return pair
    generator = torch.Generator().manual_seed(1)
    left = torch.randn(1, 3, *size, generator=generator)
    right = torch.roll(left, -7, dims=3) + 0.1 * torch.randn(1, 3, *size, generator=generator)
    return left.to(device), right.to(device)


IMPLEMENTATIONS = ("ours", "ours_bf16", "fast", "half", "reference_kept", "reference")
# the reference as the published code runs it: glibc's default allocator, in a process of its
# own; reference_kept is the same path in cnnlab's process (keep_freed_memory), to show how
# much of the speed-up is the allocator setting
DEFAULT_ALLOCATOR = ("reference",)
# previews: the pair downscaled (cnnlab's --fast, and half resolution, --scale 0.5, for
# comparison), in bf16 where the device runs it natively
SCALES = {"fast": FAST_SCALE, "half": 0.5}


def _low_precision(device: torch.device) -> str:
    return "bf16" if "bf16" in native_precisions(device) else "fp32"


def _runner(implementation: str, model: PSMNet, left, right):
    """A closure running one implementation; ours fuses BN (and runs under bf16 autocast with
    the soft-argmin in fp32 for ours_bf16; on the downscaled pair for fast and half), the
    reference keeps the default memory layout for every weight (as the published code has
    it)."""
    if implementation.startswith("reference"):
        for parameter in model.parameters():
            parameter.data = parameter.data.contiguous()
        return lambda: reference_forward(model, left, right)
    model.fuse_for_inference()
    precision = "fp32" if implementation == "ours" else _low_precision(left.device)
    scale = SCALES.get(implementation, 1.0)
    full_range = model.max_disparity
    return lambda: scaled_disparity(model, left, right, full_range, precision, scale)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_both(queue, size, repeats, device_name, threads, source, names, keep) -> None:
    """Latency of the implementations ``names`` in one process, runs interleaved (same
    conditions), with cnnlab's allocator setting if ``keep``."""
    torch.set_num_threads(threads)
    if keep:
        keep_freed_memory()
    device = torch.device(device_name)
    left, right = _inputs(size, device, source)
    runs = {name: _runner(name, _make_model(device, source), left, right) for name in names}
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
               "outputs": outputs})


def implementations(device: torch.device) -> list[str]:
    return [name for name in IMPLEMENTATIONS
            if name != "ours_bf16" or "bf16" in native_precisions(device)]


def _accuracy_settings(device: torch.device) -> dict[str, tuple[str, float]]:
    """Name -> (precision, scale) of the accuracy runs on real pairs."""
    low = _low_precision(device)
    settings = {"fp32": ("fp32", 1.0), "bf16": ("bf16", 1.0),
                "fast": (low, FAST_SCALE), "half": (low, 0.5)}
    if low == "fp32":
        del settings["bf16"]
    return settings


def _convolution_flops(queue, size, device_name) -> None:
    """FLOPs (2 per multiply-add) of one forward pass at ``size``, counted by torch."""
    device = torch.device(device_name)
    model = PSMNet().to(device).eval()
    left, right = _inputs(size, device, (None, None))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(left, right)
    queue.put(counter.get_total_flops())


def _matmul_rate(queue, device_name, threads, dtype_name, n=4096, repeats=10) -> None:
    """GFLOP/s of an n x n matrix product: the library's best rate on this machine (the best
    of ``repeats`` after warm-up: a cold first product can read half the rate)."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    dtype = getattr(torch, dtype_name)
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - started)
    queue.put(2 * n**3 / best / 1e9)


def _accuracy(queue, weights_root, data_root, precision, scale, threads) -> None:
    """EPE and D1 of the official KITTI 2015 weights on the shared KITTI 2015 pairs."""
    from cnnlab.stereo.data.datasets import open_dataset
    from cnnlab.stereo.evaluation.evaluate import evaluate_samples
    from cnnlab.stereo.inference.methods import psmnet_method
    from cnnlab.stereo.weights.registry import load_model

    torch.set_num_threads(threads)
    keep_freed_memory()
    model, card = load_model("psmnet-kitti2015", weights_root=weights_root)
    dataset = open_dataset("kitti2015", data_root, "all")
    samples = (dataset.load(i) for i in range(len(dataset)))
    predict = psmnet_method(model, card, precision, scale, confidence_radius=None)
    started = time.perf_counter()
    total = evaluate_samples(predict, samples)["aggregate"]
    seconds = (time.perf_counter() - started) / len(dataset)
    queue.put({"precision": precision, "scale": round(scale, 4), "pairs": len(dataset),
               "epe": total["all"]["epe"], "d1": total["all"]["d1"],
               "seconds_per_pair_with_reading": round(seconds, 3)})


def _peak_memory(queue, implementation, size, device_name, threads, source, keep) -> None:
    """Peak memory of one inference in a fresh process (max RSS growth on CPU, max allocated
    on CUDA), with cnnlab's allocator setting if ``keep``."""
    torch.set_num_threads(threads)
    if keep:
        keep_freed_memory()
    device = torch.device(device_name)
    left, right = _inputs(size, device, source)
    run = _runner(implementation, _make_model(device, source), left, right)
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
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["256x512", "384x1248"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--weights-root", help="folder holding PSMNet/pretrained_model_"
                                               "KITTI2015.tar: adds EPE/D1 on real pairs")
    parser.add_argument("--data-root", default="../shared/data",
                        help="folder holding KITTI2015/ (default ../shared/data)")
    args = parser.parse_args()
    device = torch.device(args.device)
    names = implementations(device)
    source = (args.weights_root, args.data_root)
    rates = {dtype: round(in_child(_matmul_rate, args.device, args.threads, dtype), 1)
             for dtype in ("float32", "bfloat16")}
    report = {"bench": "stereo_speed", "device": args.device, "threads": args.threads,
              "allocator": "cnnlab's paths and reference_kept: engine.memory."
                           "keep_freed_memory() (as cnnlab's inference commands run); "
                           "reference: glibc's default, in a process of its own",
              "max_disparity": 192, "repeats": args.repeats,
              "timed_on": "official KITTI 2015 weights, KITTI 2015 000000" if args.weights_root
              else "random weights, random pair",
              "matmul_gflops": {"fp32": rates["float32"], "bf16": rates["bfloat16"]},
              "sizes": {}}
    for text in args.sizes:
        size = tuple(int(v) for v in text.split("x"))
        seconds, outputs = {}, {}
        for keep in (True, False):
            timed = [name for name in names if (name in DEFAULT_ALLOCATOR) != keep]
            timing = in_child(_time_both, size, args.repeats, args.device, args.threads,
                              source, timed, keep)
            seconds.update(timing["seconds"])
            outputs.update(timing["outputs"])
        flops = in_child(_convolution_flops, size, args.device)
        entry = {"conv_gflop": round(flops / 1e9, 1)}
        for name in names:
            peak = in_child(_peak_memory, name, size, args.device, args.threads, source,
                            name not in DEFAULT_ALLOCATOR)
            entry[name] = {"seconds": round(seconds[name], 3), "peak_mb": round(peak, 1),
                           "speedup_vs_reference": round(seconds["reference"] / seconds[name],
                                                         3)}
            if name in SCALES:  # a preview does other work: no rate, no like-for-like output
                continue
            rate = flops / seconds[name] / 1e9
            best = rates["bfloat16" if name == "ours_bf16" else "float32"]
            entry[name].update({"gflops": round(rate, 1),
                                "fraction_of_matmul_rate": round(rate / best, 3)})
            if name != "reference":
                difference = abs(outputs[name] - outputs["reference"]).max()
                entry[name]["max_abs_difference_vs_reference"] = float(difference)
        report["sizes"][text] = entry
    if args.weights_root:
        report["kitti2015_official_weights"] = {
            name: in_child(_accuracy, args.weights_root, args.data_root, precision, scale,
                           args.threads)
            for name, (precision, scale) in _accuracy_settings(device).items()}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
