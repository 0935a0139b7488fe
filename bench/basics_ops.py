"""Why the library kernel is used: loop corr2d vs. vectorised (unfold) vs. F.conv2d.

Input 1x3x224x224, 64 kernels of 3x3 (stride 1, no padding), as in the course. The loop
version does 64 x 3 x 222 x 222 Python-level window products; by default it is timed on
--loop-channels output channels and scaled linearly to 64 (reported as such), since a full
run takes minutes. Prints one JSON line with times and ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from cnnlab.basics.ops import conv2d_unfold, corr2d_multi_in_out


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


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
    }))


if __name__ == "__main__":
    main()
