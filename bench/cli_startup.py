"""What a user waits for besides the network: command-line start-up and whole-process predict.

Each figure is the median of ``--repeats`` fresh processes, set against baselines measured in
the same run: the interpreter alone (``python -c pass``) and ``import torch``. ``--help`` and an
argument error must not import torch, so they should cost about the interpreter, far below
torch's import. With the official KITTI 2015 weights (``--weights-root``) and a KITTI 2015 pair
(``--data-root``), ``stereo predict`` on one pair is timed as a whole process, against the
network's forward pass on the same pair timed inside a process of its own (its first call, as
the command makes it, and a second, warm one): the difference is what the command adds
(imports, loading, checks, writing). On a folder of pairs (the KITTI 2015 pairs there), the
throughput of ``stereo.predict_folder`` with the model loaded once, outputs written (with and
without the overview figures; matplotlib imported beforehand, as after a first folder),
against the warm forward passes on the same pairs in the same process. Prints one JSON line.

    python bench/cli_startup.py --weights-root ../shared/weights --data-root ../shared/data

Run it alone: the machine has 2 cores and timings taken side by side are meaningless.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAIR = "KITTI2015/training/image_{}/000000_10.png"

FORWARD = """
import json, sys, time
t0 = time.perf_counter()
from cnnlab import stereo
model = stereo.load("psmnet-kitti2015", weights_root=sys.argv[1])
t1 = time.perf_counter()
first = model.predict(sys.argv[2], sys.argv[3])
t2 = time.perf_counter()
second = model.predict(sys.argv[2], sys.argv[3])
t3 = time.perf_counter()
print(json.dumps({"import_and_load_s": t1 - t0, "first_predict_s": t2 - t1,
                  "warm_predict_s": t3 - t2}))
"""

FOLDER = """
import json, sys, tempfile, time
from pathlib import Path
from cnnlab import stereo
model = stereo.load("psmnet-kitti2015", weights_root=sys.argv[1])
lefts = sorted(Path(sys.argv[2]).glob("*_10.png"))
pairs = [(left, Path(sys.argv[3]) / left.name) for left in lefts]
model.predict(*pairs[0])  # warm-up
import numpy as np
from cnnlab.stereo.inference.visualize import plot_overview
with tempfile.TemporaryDirectory() as warm:  # matplotlib's import, as after a first folder
    plot_overview(Path(warm) / "w.png", np.zeros((8, 8, 3), np.uint8),
                  np.zeros((8, 8), np.float32), 1.0)
t0 = time.perf_counter()
for left, right in pairs:
    model.predict(left, right)
t1 = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    stereo.predict_folder(model, sys.argv[2], sys.argv[3], out, log=None)
t2 = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    stereo.predict_folder(model, sys.argv[2], sys.argv[3], out, overview=False, log=None)
t3 = time.perf_counter()
print(json.dumps({"pairs": len(pairs), "forward_s": t1 - t0, "folder_s": t2 - t1,
                  "folder_no_overview_s": t3 - t2}))
"""


def wall(command: list[str], repeats: int, expect: tuple[int, ...] = (0,)) -> float:
    """Median wall time of ``command`` in fresh processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        times.append(time.perf_counter() - start)
        if done.returncode not in expect:
            raise SystemExit(f"{' '.join(command)} exited {done.returncode}: "
                             f"{done.stderr.strip()[-500:]}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="processes per figure (default 5)")
    parser.add_argument("--weights-root", help="holds PSMNet/pretrained_model_KITTI2015.tar "
                                               "(default: no predict figures)")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"),
                        help="holds KITTI2015/training (default ../shared/data)")
    args = parser.parse_args()
    python, cli = sys.executable, [sys.executable, "-m", "cnnlab"]
    figures: dict[str, float | str] = {
        "python_s": wall([python, "-c", "pass"], args.repeats),
        "import_torch_s": wall([python, "-c", "import torch"], args.repeats),
        "help_s": wall([*cli, "--help"], args.repeats),
        "stereo_predict_help_s": wall([*cli, "stereo", "predict", "--help"], args.repeats),
        "classify_train_help_s": wall([*cli, "classify", "train", "--help"], args.repeats),
        "argument_error_s": wall([*cli, "classify", "train", "--lr", "-1"], args.repeats,
                                 expect=(2,)),
    }
    figures["help_over_import_torch"] = figures["help_s"] / figures["import_torch_s"]
    left, right = (Path(args.data_root) / PAIR.format(n) for n in (2, 3))
    if args.weights_root and left.is_file():
        with tempfile.TemporaryDirectory() as out:
            whole = wall([*cli, "stereo", "predict", str(left), str(right), "--weights",
                          "psmnet-kitti2015", "--weights-root", args.weights_root, "--out",
                          out], max(2, args.repeats // 2))
        inside = [json.loads(subprocess.run(
            [python, "-c", FORWARD, args.weights_root, str(left), str(right)], check=True,
            capture_output=True, text=True, cwd=REPO).stdout.strip().splitlines()[-1])
            for _ in range(max(2, args.repeats // 2))]
        first = statistics.median(r["first_predict_s"] for r in inside)
        figures |= {"predict_whole_process_s": whole, "predict_first_call_s": first,
                    "predict_warm_call_s": statistics.median(r["warm_predict_s"]
                                                             for r in inside),
                    "import_and_load_s": statistics.median(r["import_and_load_s"]
                                                           for r in inside),
                    "predict_overhead_s": whole - first,
                    "predict_whole_over_first_call": whole / first}
        folder = [json.loads(subprocess.run(
            [python, "-c", FOLDER, args.weights_root, str(left.parent), str(right.parent)],
            check=True, capture_output=True, text=True, cwd=REPO).stdout.strip().splitlines()[-1])
            for _ in range(max(2, args.repeats // 2))]
        forward = statistics.median(r["forward_s"] for r in folder)
        folder_s = statistics.median(r["folder_s"] for r in folder)
        bare_s = statistics.median(r["folder_no_overview_s"] for r in folder)
        figures |= {"folder_pairs": folder[0]["pairs"], "folder_forward_s": forward,
                    "folder_predict_s": folder_s, "folder_predict_no_overview_s": bare_s,
                    "folder_throughput_over_forward_rate": forward / folder_s,
                    "folder_no_overview_throughput_over_forward_rate": forward / bare_s}
    print(json.dumps({"bench": "cli_startup", **figures}))


if __name__ == "__main__":
    main()
