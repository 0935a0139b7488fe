"""Stereo training throughput of this tree against an earlier commit, in one run.

The baseline is cnnlab at ``--baseline-rev`` (default: the last commit before stereo data went
through a DataLoader), checked out into a temporary git worktree; "current" is this tree. Both
run the same ``cnnlab stereo train`` command, alternately, ``--repeats`` times; the figure is
the training images per second of the second epoch (the first pays start-up), best of the
repeats, as the loop writes it to metrics.csv, and the command's peak resident memory (the
lowest of the repeats). Prints one JSON line per scenario with the ratio current / baseline,
and per worker count for the current tree. For the compute-bound scenarios it adds a step's
FLOPs per pair (torch's counter), the matrix-product rate in the step's precision measured in
the same run, and the share of it each tree's step reaches.

    python bench/stereo_train_step.py [--repeats 2] [--scenarios synthetic-small,...]

Run it alone: the machine has 2 cores and timings taken side by side are meaningless.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CNNLAB_DATA", REPO.parent / "shared" / "data"))
BASELINE_REV = "69cb5e4"  # issue 7's last commit: data read and augmented in the main process

# the README's CPU recipe (small PSMNet, 64x128 crops, batch 4): the data path is a visible
# share of a step; "--maxdisp" is spelled as both trees accept it
SMALL = ["--maxdisp", "48", "--blocks", "1,2,1,1", "--crop", "64x128", "--batch-size", "4",
         "--samples-per-epoch", "32", "--val-count", "0"]
FULL = ["--dataset", "synthetic", "--crop", "256x512", "--batch-size", "2",
        "--samples-per-epoch", "4", "--val-count", "0"]
FP32 = ["--amp", "none"]  # explicit: the default ("auto") is bf16 on this CPU since issue 21
SCENARIOS = {
    # synthetic scenes rendered per pair
    "synthetic-cpu-small": (1, ["--dataset", "synthetic", "--synthetic-size", "128x256",
                                *SMALL, *FP32]),
    # real KITTI 2015 PNGs decoded per pair (the baseline cached decoded pairs in memory)
    "kitti2015-cpu-small": (1, ["--dataset", "kitti2015", "--data-root", str(DATA), *SMALL,
                                *FP32]),
    # torchrun, 2 CPU processes: the baseline made every rank read the whole global batch
    "ddp2-synthetic-cpu-small": (2, ["--dataset", "synthetic", "--synthetic-size", "128x256",
                                     *SMALL, *FP32]),
    # the same small recipe with more pairs per epoch, in bf16: the step's compute rate
    "synthetic-cpu-small-bf16": (1, ["--dataset", "synthetic", "--synthetic-size", "128x256",
                                     *SMALL[:-4], "--samples-per-epoch", "64", "--val-count",
                                     "0", "--amp", "bf16"]),
    # the published network at the published crop: the data path is a small share of a step
    "synthetic-full": (1, [*FULL, *FP32]),
    # the same in bf16 autocast (--amp bf16), where this CPU computes bf16 natively
    "synthetic-full-bf16": (1, [*FULL, "--amp", "bf16"]),
    # the basic variant (no hourglasses) at the published crop, fp32 and bf16
    "synthetic-basic": (1, [*FULL, "--variant", "basic", *FP32]),
    "synthetic-basic-bf16": (1, [*FULL, "--variant", "basic", "--amp", "bf16"]),
    # the published rows with the C library's malloc (CNNLAB_ALLOCATOR=system): what a
    # machine without tcmalloc, or a notebook, gets
    "synthetic-full-bf16-system-malloc": (1, [*FULL, "--amp", "bf16"]),
    "synthetic-full-system-malloc": (1, [*FULL, *FP32]),
}
# environment of a scenario's runs (the baseline trees ignore the variable)
SCENARIO_ENV = {"synthetic-full-bf16-system-malloc": {"CNNLAB_ALLOCATOR": "system"},
                "synthetic-full-system-malloc": {"CNNLAB_ALLOCATOR": "system"}}
# compute-bound scenarios: the architecture and crop whose step FLOPs are counted
FLOP_COUNTED = {"synthetic-full": ({}, (256, 512)),
                "synthetic-full-bf16": ({}, (256, 512)),
                "synthetic-basic": ({"variant": "basic"}, (256, 512)),
                "synthetic-basic-bf16": ({"variant": "basic"}, (256, 512)),
                "synthetic-full-bf16-system-malloc": ({}, (256, 512)),
                "synthetic-full-system-malloc": ({}, (256, 512)),
                "synthetic-cpu-small-bf16": ({"max_disparity": 48, "blocks": (1, 2, 1, 1)},
                                             (64, 128))}


def images_per_second(src: Path, processes: int, args: list[str], out: Path,
                      extra_env: dict[str, str]) -> tuple[float, float]:
    """Train 2 epochs with the cnnlab in ``src``: epoch 2's images per second, from the
    epoch's seconds in metrics.csv and the images trained (whole global batches of the
    epoch's samples), and the command's peak resident memory in GB (its largest process)."""
    env = dict(os.environ, PYTHONPATH=str(src), **extra_env)
    cli = ["-m", "cnnlab.cli", "stereo", "train", "--epochs", "2", "--no-progress",
           "--out", str(out), *args]
    if processes > 1:
        env["OMP_NUM_THREADS"] = "1"  # one core per process
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                   str(processes), "--master_port", "29531", *cli]
    else:
        command = [sys.executable, *cli]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n"
                             f"{stderr.read().decode(errors='replace')[-2000:]}")
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    option = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    global_batch = int(option["--batch-size"]) * processes
    images = int(option["--samples-per-epoch"]) // global_batch * global_batch
    return images / float(rows[-1]["seconds"]), usage.ru_maxrss / 1e6  # KB -> GB


def allocator(extra_env: dict[str, str]) -> str:
    """The malloc the current tree's training runs under (it reruns itself under tcmalloc
    where installed, unless CNNLAB_ALLOCATOR=system)."""
    sys.path.insert(0, str(REPO / "src"))
    from cnnlab.engine.memory import find_tcmalloc, tcmalloc_environment

    environ = {k: v for k, v in {**os.environ, **extra_env}.items()
               if k != "CNNLAB_ALLOCATOR_RERUN"}
    library = find_tcmalloc()
    if "tcmalloc" in environ.get("LD_PRELOAD", "") or tcmalloc_environment(environ, library):
        return "tcmalloc"
    return "system"


def baseline_tree(rev: str, folder: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), rev],
                   check=True, capture_output=True)
    return folder / "src"


def _step_flops(queue, architecture: dict, size: tuple[int, int]) -> None:
    """FLOPs (2 per multiply-add) of one training step on one pair at ``size``: the network's
    forward and backward in train mode, counted by torch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cnnlab.stereo.models import PSMNet

    model = PSMNet(**architecture).train()
    left, right = (torch.randn(1, 3, *size) for _ in range(2))
    with FlopCounterMode(display=False) as counter:
        out = model(left, right)["disparities"]
        sum(o.mean() for o in out).backward()
    queue.put(counter.get_total_flops())


def _saved_gb(queue, architecture: dict, size: tuple[int, int], amp: bool) -> None:
    """GB that autograd keeps for the backward pass of one training step at batch 2 (every
    tensor saved, each storage counted once; a tensor the backward pass remakes, see
    stereo.models.recompute, is not kept): the activations a step must hold at its peak."""
    import torch

    from cnnlab.stereo.models import PSMNet, recompute

    model = PSMNet(**architecture).train()
    left, right = (torch.randn(2, 3, *size) for _ in range(2))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        queue.put(recompute.kept_bytes(lambda: model(left, right)) / 1e9)


def compute_rates(amp: bool, architecture: dict, size: tuple[int, int]) -> dict[str, float]:
    """The GFLOP a step costs per pair of ``size``, and the matrix-product rate of this
    machine in the step's precision (bench/stereo_speed.py's measure)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import torch
    from stereo_speed import _matmul_rate, in_child

    rate = in_child(_matmul_rate, "cpu", torch.get_num_threads(),
                     "bfloat16" if amp else "float32")
    return {"step_gflop_per_pair": in_child(_step_flops, architecture, size) / 1e9,
            "current_saved_for_backward_gb_at_batch_2": in_child(_saved_gb, architecture,
                                                                 size, amp),
            "matmul_gflop_per_s": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=BASELINE_REV,
                        help=f"git revision of the baseline (default {BASELINE_REV})")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting (default 2)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated subset of " + ", ".join(SCENARIOS))
    parser.add_argument("--workers", default="1,2",
                        help="extra worker counts to measure for the current tree (default 1,2)")
    args = parser.parse_args()
    extra_workers = [int(w) for w in args.workers.split(",") if w]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        old_src = baseline_tree(args.baseline_rev, scratch / "baseline")
        try:
            for name in args.scenarios.split(","):
                processes, scenario = SCENARIOS[name]
                settings = {"baseline": (old_src, scenario),
                            "current": (REPO / "src", scenario)}
                if processes == 1 and name not in FLOP_COUNTED:  # those: compute-bound
                    for workers in extra_workers:
                        settings[f"current_workers{workers}"] = (
                            REPO / "src", [*scenario, "--workers", str(workers)])
                best = dict.fromkeys(settings, 0.0)
                peak = dict.fromkeys(settings, float("inf"))
                for repeat in range(args.repeats):
                    for key, (src, command) in settings.items():
                        out = scratch / f"{name}-{key}-{repeat}"
                        rate, rss = images_per_second(src, processes, command, out,
                                                      SCENARIO_ENV.get(name, {}))
                        best[key], peak[key] = max(best[key], rate), min(peak[key], rss)
                line = {"bench": "stereo_train_step", "scenario": name, "processes": processes,
                        "baseline_rev": args.baseline_rev, "repeats": args.repeats,
                        "images_per_s": {k: float(f"{v:.4g}") for k, v in best.items()},
                        "s_per_image": {k: float(f"{1 / v:.4g}") for k, v in best.items()},
                        "ratio_current_to_baseline": round(best["current"] / best["baseline"],
                                                           4),
                        "peak_rss_gb": {k: round(v, 3) for k, v in peak.items()},
                        "current_allocator": allocator(SCENARIO_ENV.get(name, {}))}
                if name in FLOP_COUNTED:  # compute-bound: the step's FLOP rate
                    amp = scenario[scenario.index("--amp") + 1]
                    rates = compute_rates(amp == "bf16", *FLOP_COUNTED[name])
                    achieved = {k: v * rates["step_gflop_per_pair"] for k, v in best.items()}
                    line |= {**{k: round(v, 3) for k, v in rates.items()},
                             "gflop_per_s": {k: round(v, 1) for k, v in achieved.items()},
                             "share_of_matmul_rate": {
                                 k: round(v / rates["matmul_gflop_per_s"], 3)
                                 for k, v in achieved.items()}}
                for key in best:
                    if key.startswith("current_workers"):
                        line[f"ratio_{key}_to_baseline"] = round(best[key] / best["baseline"], 3)
                print(json.dumps(line), flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(scratch / "baseline")], check=False, capture_output=True)


if __name__ == "__main__":
    main()
