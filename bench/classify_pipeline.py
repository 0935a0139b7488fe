"""Time per epoch: cnnlab's in-memory device pipeline vs. the conventional reference pipeline.

Reference: torchvision.datasets.<Dataset> + DataLoader + per-sample ToTensor/Normalize (the
pytorch/examples recipe). Same model, same initial weights, same optimizer, same batch size,
same machine, same run. Prints one JSON line with both times and their ratios, for the data
pipeline alone and for a full training epoch (ours also with ``--amp bf16`` where the CPU
computes bf16 natively).

    python bench/classify_pipeline.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch.utils.data import DataLoader
from torchvision import transforms

from cnnlab.classify.data import Preprocess, load_classify_data
from cnnlab.classify.networks import create_model
from cnnlab.data.vision import get_spec
from cnnlab.engine.device import autocast, prepare_model
from cnnlab.engine.precision import native_precisions

TORCHVISION_CLASSES = {"mnist": ("MNIST", torchvision.datasets.MNIST),
                       "fashion-mnist": ("FashionMNIST", torchvision.datasets.FashionMNIST)}


def reference_dataset(name: str, data_root: Path, scratch: Path):
    """torchvision's dataset over an extracted copy of the same gz files."""
    folder, cls = TORCHVISION_CLASSES[name]
    spec = get_spec(name)
    raw = scratch / folder / "raw"
    raw.mkdir(parents=True)
    for pair in spec.files.values():
        for item in pair:
            with gzip.open(data_root / spec.folder / item.name) as src, \
                    open(raw / item.name.removesuffix(".gz"), "wb") as dst:
                shutil.copyfileobj(src, dst)
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize(spec.mean, spec.std)])
    return cls(str(scratch), train=True, transform=transform, download=False)


def train_epoch(model, optimizer, batches, max_batches: int, channels_last: bool,
                amp: str = "none") -> tuple[float, int]:
    model.train()
    started, seen = time.perf_counter(), 0
    for i, (images, labels) in enumerate(batches):
        if i == max_batches:
            break
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(torch.device("cpu"), amp):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(labels)
    return time.perf_counter() - started, seen


def iterate_only(batches, max_batches: int) -> float:
    started = time.perf_counter()
    for i, (images, _labels) in enumerate(batches):
        if i == max_batches:
            break
        images.sum()  # touch the data
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", choices=list(TORCHVISION_CLASSES), default="fashion-mnist")
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--max-batches", type=int, default=-1, help="-1: a full epoch")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader workers of the reference (pytorch/examples: 0 on CPU)")
    args = parser.parse_args()
    spec = get_spec(args.dataset)
    device = torch.device("cpu")
    max_batches = args.max_batches if args.max_batches > 0 else 10**9

    started = time.perf_counter()
    data = load_classify_data(args.dataset, device, args.data_root)
    ours_load = time.perf_counter() - started
    preprocess = Preprocess(spec.mean, spec.std, spec.size, spec.channels)

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        reference = reference_dataset(args.dataset, args.data_root, Path(scratch))
        reference_load = time.perf_counter() - started

        def reference_batches():
            return DataLoader(reference, batch_size=args.batch_size, shuffle=True,
                              num_workers=args.workers, drop_last=True)

        def our_batches():
            return data.train.batches(args.batch_size, preprocess, torch.Generator()
                                      .manual_seed(0), drop_last=True)

        # data pipeline alone
        ours_data = iterate_only(our_batches(), max_batches)
        reference_data = iterate_only(reference_batches(), max_batches)

        # a full training epoch, same model and initial weights (warm-up steps excluded); ours
        # runs as cnnlab trains (prepare_model: channels_last), the reference as pytorch/examples
        # ours_bf16: the same with --amp bf16, where the CPU computes bf16 natively
        results = {}
        runs = [("ours", our_batches, "none"), ("reference", reference_batches, "none")]
        if "bf16" in native_precisions(device):
            runs.insert(1, ("ours_bf16", our_batches, "bf16"))
        for name, batches, amp in runs:
            torch.manual_seed(0)
            model = create_model(args.model, in_channels=spec.channels)
            ours = name.startswith("ours")
            if ours:
                model = prepare_model(model, device)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            train_epoch(model, optimizer, batches(), 2, ours, amp)
            results[name] = train_epoch(model, optimizer, batches(), max_batches, ours, amp)

    print(json.dumps({
        "bench": "classify_pipeline", "dataset": args.dataset, "model": args.model,
        "batch_size": args.batch_size, "reference_workers": args.workers,
        "images": results["ours"][1], "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "load_seconds": {"ours": round(ours_load, 3), "reference": round(reference_load, 3)},
        "data_only_seconds": {"ours": round(ours_data, 3), "reference": round(reference_data, 3)},
        "data_only_speedup": round(reference_data / ours_data, 2),
        "epoch_seconds": {name: round(seconds, 3) for name, (seconds, _) in results.items()},
        "epoch_speedup": round(results["reference"][0] / results["ours"][0], 2),
        "epoch_speedup_bf16": round(results["reference"][0] / results["ours_bf16"][0], 2)
        if "ours_bf16" in results else None,
    }))


if __name__ == "__main__":
    main()
