"""Classification as a Task for the shared loop: cross-entropy, accuracy, validation line."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.classify.data import Augment, Preprocess, TensorSplit
from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo


class ClassifyTask:
    best_metric = "acc"
    stat_keys = ("loss_sum", "correct", "count")
    best_mode = "max"

    def __init__(self, train: TensorSplit, val: TensorSplit | None, test: TensorSplit,
                 preprocess: Preprocess, batch_size: int, augment: Augment | None,
                 label_smoothing: float = 0.0, info: DistInfo = SINGLE_PROCESS,
                 eval_batch_size: int = 1000):
        """``val`` None: validate on ``test``, as the course does."""
        self.train, self.val, self.test = train, val, test
        self.preprocess = preprocess
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.augment = augment
        self.label_smoothing = label_smoothing
        self.info = info

    def num_train_batches(self) -> int:
        return self.train.num_batches(self.batch_size, self.info, drop_last=True)

    @property
    def validates_on_test(self) -> bool:
        return self.val is None

    def train_batches(self, epoch: int, generator: torch.Generator):
        return self.train.batches(self.batch_size, self.preprocess, generator, self.augment,
                                  self.info, drop_last=True)

    def val_batches(self):
        return (self.val or self.test).batches(self.eval_batch_size, self.preprocess,
                                               info=self.info)

    def test_batches(self):
        return self.test.batches(self.eval_batch_size, self.preprocess, info=self.info)

    @staticmethod
    def batch_size_of(batch) -> int:
        return len(batch[1])

    def loss_and_stats(self, model: nn.Module, batch, train: bool):
        images, labels = batch
        images = images.contiguous(memory_format=torch.channels_last)  # prepare_model's layout
        logits = model(images)
        loss = F.cross_entropy(logits.float(), labels,
                               label_smoothing=self.label_smoothing if train else 0.0)
        n = len(labels)  # tensors stay on the device; the loop converts them once per epoch
        return loss, {"loss_sum": loss.detach() * n,
                      "correct": (logits.argmax(1) == labels).sum(), "count": n}

    @staticmethod
    def summarize(sums: dict[str, float]) -> dict[str, float]:
        count = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums.get("loss_sum", 0.0) / count, "acc": sums.get("correct", 0.0) / count}

    @staticmethod
    def format_validation(sums: dict[str, float]) -> str:
        count, correct = int(sums["count"]), int(sums["correct"])
        return (f"Validation: loss {sums['loss_sum'] / count:.4f}, accuracy {correct}/{count} "
                f"({100.0 * correct / count:.2f}%)")
