"""Stereo as a Task for the shared loop: batches from the pipeline, PSMNet loss, EPE/D1 sums.

Statistics stay on the device as tensors; the loop converts them once per epoch, so a training
step never waits for the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from cnnlab.stereo.evaluation.metrics import COUNT_KEYS, error_counts, rates
from cnnlab.stereo.training.losses import disparity_loss
from cnnlab.stereo.training.pipeline import EpochSampler, Pair


class StereoTask:
    best_metric = "epe"
    stat_keys = ("loss_sum", "count", *COUNT_KEYS)
    best_mode = "min"

    def __init__(self, loader: DataLoader, sampler: EpochSampler,
                 val_pairs: list[Pair] | None, device: torch.device):
        """``val_pairs``: this rank's share of the validation pairs (None: no validation;
        under DDP a share may be empty while others are not)."""
        self.loader, self.sampler = loader, sampler
        self.val_pairs = val_pairs
        self.device = device

    def num_train_batches(self) -> int:
        return len(self.loader)

    def _to_device(self, batch: Pair) -> Pair:
        non_blocking = self.device.type == "cuda"
        return tuple(t.to(self.device, non_blocking=non_blocking) for t in batch)

    def train_batches(self, epoch: int, generator: torch.Generator) -> Iterator[Pair]:
        """Epoch ``epoch``'s batches: the pipeline seeds each pair from (seed, epoch, index)."""
        self.sampler.set_epoch(epoch)
        return (self._to_device(batch) for batch in self.loader)

    def val_batches(self) -> Iterator[Pair]:
        return (self._to_device(pair) for pair in self.val_pairs or ())

    @staticmethod
    def batch_size_of(batch: Pair) -> int:
        return batch[0].shape[0]

    def loss_and_stats(self, model: nn.Module, batch: Pair, train: bool
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor | int]]:
        left, right, target, mask = batch
        output = model(left, right)
        loss = disparity_loss(output["disparities"], target, mask)
        counts = error_counts(output["disparity"].detach(), target, mask)
        return loss, {"loss_sum": loss.detach() * left.shape[0], "count": left.shape[0],
                      **counts}

    @staticmethod
    def summarize(sums: dict[str, float]) -> dict[str, float]:
        if not sums:
            return {}
        metrics = rates(sums)
        return {"loss": float(sums["loss_sum"]) / max(float(sums["count"]), 1.0),
                "epe": metrics["epe"], "d1": metrics["d1"]}

    @staticmethod
    def format_validation(sums: dict[str, float]) -> str:
        metrics = rates(sums)
        return (f"Validation: EPE {metrics['epe']:.3f} px, D1 {metrics['d1']:.2f}%, "
                f"bad-3 {metrics['bad3']:.2f}% over {int(sums['pixels'])} pixels "
                f"in {int(sums['count'])} pairs")
