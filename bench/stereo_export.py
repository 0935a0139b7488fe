"""PSMNet exported and compiled: ONNX Runtime and OpenVINO on the exported graph, and frozen
torch.compile, against cnnlab's eager PyTorch, same weights, same pairs.

One ONNX file is exported with dynamic height and width (``cnnlab stereo export``) and run at
two sizes. Parity: each runtime's largest disparity difference from PyTorch fp32, set against
the float-rounding floor, the largest difference between PyTorch fp32 and PyTorch fp64 on the
same pair: two fp32 implementations of a 1.35 TFLOP network cannot agree more closely than
each agrees with exact arithmetic. Each runtime runs in a fresh process (time: median of the
repeats after a warm-up; peak memory: max RSS growth over the runs, from after the model or
graph is loaded). Frozen compile (inductor with
``freezing=True``, bf16 autocast) reports its compile time and its latency. With the official
KITTI 2015 weights (``--weights-root``) the pairs are KITTI 2015 000000 cropped to each size,
else random weights and pairs. Prints one JSON line.

    python bench/stereo_export.py --sizes 256x512 384x1248 --weights-root ../shared/weights
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from stereo_speed import _inputs, _make_model, in_child  # that bench's model, pairs, children

from cnnlab.engine.memory import keep_freed_memory
from cnnlab.engine.precision import inference_autocast, native_precisions
from cnnlab.stereo.inference.export import export_onnx
from cnnlab.stereo.weights.card import psmnet_card

FP64_LIMIT_GB = 8.0  # the fp64 reference is skipped above this unfolding size


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(run, repeats: int) -> tuple[list[float], np.ndarray]:
    output = run()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return times, np.asarray(output, dtype=np.float32)


def _run_torch(queue, size, threads, source, repeats, precision) -> None:
    """cnnlab's eager PyTorch in ``precision``: fp32, bf16, or fp64 (exact arithmetic's
    stand-in: the network and the published trilinear soft-argmin all in float64)."""
    from cnnlab.stereo.inference.methods import scaled_disparity
    from cnnlab.stereo.models.psmnet import disparity_regression

    torch.set_num_threads(threads)
    keep_freed_memory()
    device = torch.device("cpu")
    model = _make_model(device, source).fuse_for_inference()
    left, right = _inputs(size, device, source)
    baseline = _rss_mb()
    if precision == "fp64":
        model, left, right = model.double(), left.double(), right.double()
        with torch.no_grad():
            cost = model.aggregate_costs(model.features(left), model.features(right))[-1]
            output = disparity_regression(cost, model.max_disparity, size,
                                          model.config.align_corners)[0].numpy()
        queue.put({"times": [], "output": output, "peak_mb": _rss_mb() - baseline})
        return
    times, output = _timed(lambda: scaled_disparity(model, left, right, model.max_disparity,
                                                    precision)[0].float().numpy(), repeats)
    queue.put({"times": times, "output": output, "peak_mb": _rss_mb() - baseline})


def _run_exported(queue, path, runtime, size, threads, source, repeats) -> None:
    from cnnlab.stereo.inference.runtime import ExportedStereoModel

    torch.set_num_threads(threads)
    keep_freed_memory()  # as the CLI runs it
    left, right = _inputs(size, torch.device("cpu"), source)
    started = time.perf_counter()
    model = ExportedStereoModel(Path(path), runtime, threads)
    load = time.perf_counter() - started
    baseline = _rss_mb()  # after the graph is loaded, as PyTorch's after its model
    times, output = _timed(lambda: model(left, right)["disparity"][0].numpy(), repeats)
    queue.put({"times": times, "output": output, "peak_mb": _rss_mb() - baseline,
               "load_seconds": load})


def _run_compiled(queue, size, threads, source, repeats) -> None:
    """Frozen inductor compile of the eager model under bf16 autocast (or fp32 where bf16 is
    not native): compile time (the first call) and latency."""
    import torch._inductor.config as inductor

    torch.set_num_threads(threads)
    keep_freed_memory()
    inductor.freezing = True
    device = torch.device("cpu")
    model = _make_model(device, source).fuse_for_inference()
    model.row_chunk = None  # a Python loop over rows would be unrolled into the graph
    left, right = _inputs(size, device, source)
    precision = "bf16" if "bf16" in native_precisions(device) else "fp32"
    compiled = torch.compile(model)

    def run():
        with torch.no_grad(), inference_autocast(device, precision):
            return compiled(left, right)["disparity"][0].float().numpy()
    started = time.perf_counter()
    run()
    compile_seconds = time.perf_counter() - started
    times, output = _timed(run, repeats)
    queue.put({"times": times, "output": output, "compile_seconds": compile_seconds,
               "precision": precision})


def _export(queue, path, source, low, high) -> None:
    model = _make_model(torch.device("cpu"), source)
    queue.put(export_onnx(model, psmnet_card(model.config), Path(path), low, high))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["256x512", "384x1248"],
                        help="HxW, multiples of 16 (default 256x512 384x1248)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="threads (default: torch's)")
    parser.add_argument("--weights-root", help="folder holding PSMNet/pretrained_model_"
                                               "KITTI2015.tar (default: random weights)")
    parser.add_argument("--data-root", default="../shared/data",
                        help="folder holding KITTI2015/ (default ../shared/data)")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip frozen torch.compile (minutes of compiling; default: run)")
    args = parser.parse_args()
    source = (args.weights_root, args.data_root)
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes]
    low = (min(s[0] for s in sizes), min(s[1] for s in sizes))
    high = (max(s[0] for s in sizes), max(s[1] for s in sizes))
    runtimes = [("onnxruntime", "fp32")]  # the exported graph runs in fp32 (runtime.py)
    try:
        import openvino  # noqa: F401
        runtimes += [("openvino", "fp32")]
    except ImportError:
        pass
    low_precision = "bf16" if "bf16" in native_precisions(torch.device("cpu")) else "fp32"
    report = {"bench": "stereo_export", "threads": args.threads, "repeats": args.repeats,
              "timed_on": "official KITTI 2015 weights, KITTI 2015 000000" if args.weights_root
              else "random weights, random pair", "sizes": {}}
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "psmnet.onnx")
        written = in_child(_export, path, source, low, high)
        report["export"] = {"seconds": written["export_seconds"], "min_size": list(low),
                            "max_size": list(high),
                            "file_mb": round(Path(path).stat().st_size / 1e6, 1)}
        for size, text in zip(sizes, args.sizes):
            # fp64 convolutions have no oneDNN kernel: PyTorch unfolds each 3-D input,
            # 64 x 27 values per voxel of the (D/4, H/4, W/4) volume, all at once
            unfold_gb = 64 * 27 * 48 * (size[0] // 4) * (size[1] // 4) * 8 / 1e9
            exact = None
            if unfold_gb <= FP64_LIMIT_GB:
                exact = in_child(_run_torch, size, args.threads, source, 0, "fp64")
            rows = {}
            for name, precision in (("torch_fp32", "fp32"), (f"torch_{low_precision}",
                                                             low_precision)):
                rows[name] = in_child(_run_torch, size, args.threads, source, args.repeats,
                                      precision)
            for runtime, precision in runtimes:
                rows[f"{runtime}_{precision}"] = in_child(
                    _run_exported, path, runtime, size, args.threads, source, args.repeats)
            reference = rows["torch_fp32"]["output"]
            entry = {"fp32_rounding_floor_px": None if exact is None else
                     float(np.abs(reference - exact["output"]).max())}
            if exact is None:
                entry["fp64_skipped"] = f"its unfolded convolutions would take {unfold_gb:.0f} GB"
            for name, row in rows.items():
                entry[name] = {"seconds": round(statistics.median(row["times"]), 3),
                               "peak_mb": round(row["peak_mb"], 1),
                               "max_px_vs_torch_fp32": float(np.abs(row["output"]
                                                                    - reference).max()),
                               "mean_px_vs_torch_fp32": float(np.abs(row["output"]
                                                                     - reference).mean())}
                if exact is not None:
                    entry[name]["max_px_vs_fp64"] = float(np.abs(row["output"]
                                                                 - exact["output"]).max())
                if "load_seconds" in row:
                    entry[name]["load_seconds"] = round(row["load_seconds"], 2)
            if not args.no_compile:
                compiled = in_child(_run_compiled, size, args.threads, source, args.repeats)
                entry[f"torch_compile_frozen_{compiled['precision']}"] = {
                    "seconds": round(statistics.median(compiled["times"]), 3),
                    "compile_seconds": round(compiled["compile_seconds"], 1),
                    "max_px_vs_torch_fp32": float(np.abs(compiled["output"]
                                                         - reference).max())}
            report["sizes"][text] = entry
    print(json.dumps(report))


if __name__ == "__main__":
    main()
