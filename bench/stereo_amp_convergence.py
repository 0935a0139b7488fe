"""Does bf16 autocast train PSMNet as well as fp32 on the CPU? The check behind ``--amp``'s
default: the same runs in fp32 and bf16 with two seeds, and their curves side by side.

Two protocols, each run through ``cnnlab stereo train``:

- ``finetune``: the official KITTI 2015 weights fine-tuned on the shared KITTI 2015 pairs
  (256x512 crops, batch 2) and validated each epoch on the shared KITTI 2012 pairs, whole;
- ``scratch``: the ``cpu-small`` preset from random weights on synthetic scenes, validated
  on synthetic scenes it never trains on.

For every epoch it takes the train loss and the validation EPE of each run, and says whether
bf16's mean lies within the spread of the seeds: the largest gap between two seeds of one
precision at that epoch (a difference smaller than what a change of seed does is no
difference). Prints one JSON line per protocol and draws the curves (``--plot``).

    python bench/stereo_amp_convergence.py [--protocols finetune,scratch] [--plot FILE]

Runs take about half an hour on 2 cores; two run side by side, one thread each. Nothing
else should time anything meanwhile.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = Path(os.environ.get("CNNLAB_DATA", SHARED / "data"))
WEIGHTS = Path(os.environ.get("CNNLAB_WEIGHTS", SHARED / "weights"))
AMPS = ("none", "bf16")
KITTI2015 = ["000000_10.png", "000001_10.png", "000046_10.png"]
KITTI2012 = ["000000_10.png", "000001_10.png"]


def _list_file(path: Path, root: Path, left: str, right: str, gt: str, names: list[str]) -> Path:
    path.write_text("".join(f"{root / left / n} {root / right / n} {root / gt / n}\n"
                            for n in names))
    return path


def protocols(scratch: Path, epochs: dict[str, int]) -> dict[str, list[str]]:
    """The ``stereo train`` arguments of each protocol (without seed, amp and output)."""
    train = _list_file(scratch / "kitti2015.txt", DATA / "KITTI2015" / "training", "image_2",
                       "image_3", "disp_occ_0", KITTI2015)
    val = _list_file(scratch / "kitti2012.txt", DATA / "KITTI2012" / "training", "colored_0",
                     "colored_1", "disp_occ", KITTI2012)
    return {
        "finetune": ["--dataset", "folder", "--list", str(train), "--val-list", str(val),
                     "--gt-format", "kitti", "--init", "psmnet-kitti2015", "--weights-root",
                     str(WEIGHTS), "--crop", "256x512", "--batch-size", "2",
                     "--samples-per-epoch", "12", "--epochs", str(epochs["finetune"]),
                     "--lr", "1e-4"],
        "scratch": ["--preset", "cpu-small", "--dataset", "synthetic", "--samples-per-epoch",
                    "160", "--val-count", "16", "--epochs", str(epochs["scratch"])],
    }


def train(args: list[str], out: Path) -> list[dict[str, float]]:
    """One run on one thread; its metrics.csv rows."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "cnnlab.cli", "stereo", "train", "--no-progress",
               "--workers", "0", "--out", str(out), *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    with open(out / "metrics.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(handle)]


def within_spread(runs: dict[str, dict[int, list[dict]]], key: str) -> dict:
    """Per epoch: each precision's mean of ``key`` over the seeds, the seeds' spread (the
    larger of the two precisions' max - min), and whether the means differ by no more."""
    epochs = len(next(iter(runs["none"].values())))
    means, spreads, inside = {amp: [] for amp in AMPS}, [], []
    for epoch in range(epochs):
        values = {amp: [rows[epoch][key] for rows in runs[amp].values()] for amp in AMPS}
        for amp in AMPS:
            means[amp].append(round(sum(values[amp]) / len(values[amp]), 4))
        spread = max(max(v) - min(v) for v in values.values())
        spreads.append(round(spread, 4))
        inside.append(abs(means["bf16"][-1] - means["none"][-1]) <= spread)
    return {"mean": means, "seed_spread": spreads, "bf16_within_spread": inside}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("train_loss", "train loss (smooth L1)"), ("val_epe", "validation EPE (px)"))
    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.6 * len(results)), squeeze=False)
    for row, (name, result) in enumerate(results.items()):
        for col, (key, label) in enumerate(keys):
            ax = axes[row][col]
            for amp, style in zip(AMPS, ("-", "--"), strict=True):
                for seed, rows in result["runs"][amp].items():
                    ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], style,
                            marker="o", label=f"{'fp32' if amp == 'none' else amp}, seed {seed}")
            ax.set(title=f"{name}: {label}", xlabel="epoch", ylabel=label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", default="finetune,scratch",
                        help="comma-separated subset of finetune, scratch (default both)")
    parser.add_argument("--seeds", default="0,1", help="seeds (default 0,1)")
    parser.add_argument("--finetune-epochs", type=int, default=4, help="default 4")
    parser.add_argument("--scratch-epochs", type=int, default=6, help="default 6")
    parser.add_argument("--parallel", type=int, default=2,
                        help="runs side by side, one thread each (default 2)")
    parser.add_argument("--plot", type=Path, help="PNG of the curves (default: none)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        recipes = protocols(scratch, {"finetune": args.finetune_epochs,
                                      "scratch": args.scratch_epochs})
        for name in args.protocols.split(","):
            jobs = {(amp, seed): [*recipes[name], "--amp", amp, "--seed", str(seed)]
                    for amp in AMPS for seed in seeds}
            with ThreadPoolExecutor(args.parallel) as pool:
                done = {key: pool.submit(train, job, scratch / f"{name}-{key[0]}-{key[1]}")
                        for key, job in jobs.items()}
                runs = {amp: {seed: done[amp, seed].result() for seed in seeds} for amp in AMPS}
            result = {"bench": "stereo_amp_convergence", "protocol": name, "seeds": seeds,
                      "arguments": recipes[name],
                      "train_loss": within_spread(runs, "train_loss"),
                      "val_epe": within_spread(runs, "val_epe")}
            print(json.dumps(result), flush=True)
            results[name] = result | {"runs": runs}
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
