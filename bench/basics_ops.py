"""Why the library kernel is used: loop corr2d vs. vectorised (unfold) vs. F.conv2d.

Input 1x3x224x224, 64 kernels of 3x3 (stride 1, no padding), as in the course. The loop
version does 64 x 3 x 222 x 222 Python-level window products; by default it is timed on
--loop-channels output channels and scaled linearly to 64 (reported as such), since a full
run takes minutes. The same comparison for the transposed convolution (loop over input pixels
and zero insertion + unfold vs. F.conv_transpose2d, 1x64x28x28 -> 1x32x56x56) and the cost of
softmax pooling against max and average pooling (8x64x56x56, 2x2). Prints one JSON line with
times and ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from cnnlab.basics.ops import (
    conv2d_unfold,
    conv_transpose2d,
    conv_transpose2d_zero_insert,
    corr2d_multi_in_out,
    softmax_pool2d,
)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def transposed_conv_times(repeats: int) -> dict:
    """Loop and zero-insertion transposed convolution against F.conv_transpose2d (x2 upsampling)."""
    x = torch.randn(1, 64, 28, 28)
    weight = torch.randn(64, 32, 4, 4)
    options = {"stride": 2, "padding": 1}
    reference = F.conv_transpose2d(x, weight, **options)
    for ours in (conv_transpose2d, conv_transpose2d_zero_insert):
        torch.testing.assert_close(ours(x, weight, **options), reference, atol=1e-3, rtol=1e-4)
    library_s = best_of(lambda: F.conv_transpose2d(x, weight, **options), repeats)
    zero_insert_s = best_of(lambda: conv_transpose2d_zero_insert(x, weight, **options), repeats)
    loop_s = best_of(lambda: conv_transpose2d(x, weight, **options), repeats)
    return {"input": list(x.shape), "weight": list(weight.shape), **options,
            "seconds": {"F.conv_transpose2d": round(library_s, 5),
                        "zero_insert": round(zero_insert_s, 5), "loop": round(loop_s, 4)},
            "zero_insert_over_library": round(zero_insert_s / library_s, 2),
            "loop_over_library": round(loop_s / library_s, 1)}


def softmax_pool_times(repeats: int) -> dict:
    """softmax_pool2d (T=1) against F.max_pool2d and F.avg_pool2d, 2x2 windows, stride 2."""
    x = torch.randn(8, 64, 56, 56)
    max_s = best_of(lambda: F.max_pool2d(x, 2), repeats)
    avg_s = best_of(lambda: F.avg_pool2d(x, 2), repeats)
    softmax_s = best_of(lambda: softmax_pool2d(x, 2), repeats)
    return {"input": list(x.shape), "pool": 2,
            "seconds": {"F.max_pool2d": round(max_s, 5), "F.avg_pool2d": round(avg_s, 5),
                        "softmax_pool2d": round(softmax_s, 5)},
            "over_max_pool2d": round(softmax_s / max_s, 1),
            "over_avg_pool2d": round(softmax_s / avg_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop-channels", type=int, default=1,
                        help="output channels the loop version is timed on (64 = all)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    weight = torch.randn(64, 3, 3, 3)
    with torch.no_grad():
        reference = F.conv2d(x, weight)
        vectorised = conv2d_unfold(x, weight)
        torch.testing.assert_close(vectorised, reference, atol=1e-4, rtol=1e-4)
        conv_s = best_of(lambda: F.conv2d(x, weight), args.repeats)
        unfold_s = best_of(lambda: conv2d_unfold(x, weight), args.repeats)
        part = weight[:args.loop_channels]
        started = time.perf_counter()
        loop_part = corr2d_multi_in_out(x[0], part)
        loop_measured = time.perf_counter() - started
        torch.testing.assert_close(loop_part, reference[0, :args.loop_channels],
                                   atol=1e-4, rtol=1e-4)
        transposed = transposed_conv_times(args.repeats)
        softmax = softmax_pool_times(args.repeats)
    loop_s = loop_measured * 64 / args.loop_channels
    print(json.dumps({
        "bench": "basics_ops", "input": [1, 3, 224, 224], "kernels": [64, 3, 3, 3],
        "torch_threads": torch.get_num_threads(),
        "seconds": {"F.conv2d": round(conv_s, 5), "unfold": round(unfold_s, 5),
                    "loop": round(loop_s, 2)},
        "loop_timed_channels": args.loop_channels, "loop_measured_seconds": round(loop_measured, 2),
        "unfold_over_conv2d": round(unfold_s / conv_s, 2),
        "loop_over_conv2d": round(loop_s / conv_s, 1),
        "loop_over_unfold": round(loop_s / unfold_s, 1),
        "conv_transpose2d": transposed, "softmax_pool2d": softmax,
    }))


if __name__ == "__main__":
    main()
