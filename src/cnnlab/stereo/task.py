"""Stereo as a Task for the shared loop: crops, jitter, PSMNet loss, EPE/D1 statistics."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo
from cnnlab.stereo.datasets import StereoDataset, StereoSample
from cnnlab.stereo.losses import disparity_loss, valid_mask
from cnnlab.stereo.metrics import error_counts, rates
from cnnlab.stereo.preprocess import IMAGENET_MEAN, IMAGENET_STD, to_input


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(torch.empty(1).uniform_(low, high, generator=generator))


def random_crop(sample: StereoSample, crop: tuple[int, int], generator: torch.Generator):
    """The same window of left, right, disparity and mask; small images are zero-padded."""
    ch, cw = crop
    h, w = sample.disparity.shape
    pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
    left, right = sample.left, sample.right
    disparity, valid = sample.disparity, sample.valid
    if pad_h or pad_w:
        pads = ((0, pad_h), (0, pad_w))
        left = np.pad(left, pads + ((0, 0),))
        right = np.pad(right, pads + ((0, 0),))
        disparity, valid = np.pad(disparity, pads), np.pad(valid, pads)
        h, w = disparity.shape
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    start = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    window = (slice(top, top + ch), slice(start, start + cw))
    return left[window], right[window], disparity[window], valid[window]


def photometric_jitter(left: torch.Tensor, right: torch.Tensor, generator: torch.Generator):
    """Brightness, contrast and gamma shared by both views (they see the same scene), plus a
    small per-view gain (real cameras differ slightly). Inputs in [0, 1]."""
    gamma = _uniform(generator, 0.8, 1.2)
    contrast = _uniform(generator, 0.8, 1.2)
    brightness = _uniform(generator, 0.8, 1.2)
    out = []
    for image in (left, right):
        gain = _uniform(generator, 0.97, 1.03)
        mean = image.mean()
        image = ((image - mean) * contrast + mean) * brightness * gain
        out.append(image.clamp(0, 1) ** gamma)
    return out


class StereoTask:
    best_metric = "epe"
    best_mode = "min"

    def __init__(self, train_set: StereoDataset, val_samples: list[StereoSample],
                 crop: tuple[int, int], batch_size: int, samples_per_epoch: int, maxdisp: int,
                 device: torch.device, info: DistInfo = SINGLE_PROCESS, jitter: bool = True):
        self.train_set, self.val_samples = train_set, val_samples
        self.crop, self.batch_size = crop, batch_size
        self.samples_per_epoch, self.maxdisp = samples_per_epoch, maxdisp
        self.device, self.info, self.jitter = device, info, jitter
        self._cache: dict[int, StereoSample] = {}
        self._cacheable = len(train_set) <= 500 and train_set.name != "synthetic"

    def _sample(self, index: int) -> StereoSample:
        if not self._cacheable:
            return self.train_set.load(index)
        if index not in self._cache:
            self._cache[index] = self.train_set.load(index)
        return self._cache[index]

    def num_train_batches(self) -> int:
        return self.samples_per_epoch // (self.batch_size * self.info.world_size)

    def train_batches(self, generator: torch.Generator):
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        for _ in range(self.num_train_batches()):
            # every rank draws the same indices, then takes its own slice of the batch
            picks = torch.randint(len(self.train_set), (self.batch_size * self.info.world_size,),
                                  generator=generator).tolist()
            lefts, rights, targets, masks = [], [], [], []
            for rank_slot, index in enumerate(picks):
                crop = random_crop(self._sample(index), self.crop, generator)
                left = torch.from_numpy(crop[0]).permute(2, 0, 1).float() / 255
                right = torch.from_numpy(crop[1]).permute(2, 0, 1).float() / 255
                if self.jitter:
                    left, right = photometric_jitter(left, right, generator)
                if rank_slot // self.batch_size != self.info.rank:
                    continue
                lefts.append(left)
                rights.append(right)
                targets.append(torch.from_numpy(np.ascontiguousarray(crop[2])))
                masks.append(torch.from_numpy(np.ascontiguousarray(crop[3])))
            left = ((torch.stack(lefts) - mean) / std).to(self.device)
            right = ((torch.stack(rights) - mean) / std).to(self.device)
            target = torch.stack(targets).to(self.device)
            mask = torch.stack(masks).to(self.device) & valid_mask(target, self.maxdisp)
            yield left, right, target, mask

    def val_batches(self):
        shard = self.val_samples[self.info.rank::self.info.world_size]
        for sample in shard:
            target = torch.from_numpy(sample.disparity).unsqueeze(0).to(self.device)
            mask = torch.from_numpy(sample.valid).unsqueeze(0).to(self.device)
            yield (to_input(sample.left, self.device), to_input(sample.right, self.device),
                   target, mask & valid_mask(target, self.maxdisp))

    @staticmethod
    def batch_size_of(batch) -> int:
        return batch[0].shape[0]

    def loss_and_stats(self, model, batch, train: bool):
        left, right, target, mask = batch
        predictions = model(left, right)
        loss = disparity_loss(predictions, target, mask)
        final = predictions[-1] if isinstance(predictions, list) else predictions
        counts = error_counts(final.detach(), target, mask)
        stats = {"loss_sum": float(loss.detach()) * left.shape[0], "count": left.shape[0],
                 **counts}
        return loss, stats

    @staticmethod
    def summarize(sums: dict[str, float]) -> dict[str, float]:
        if not sums:
            return {}
        metrics = rates(sums)
        return {"loss": sums["loss_sum"] / max(sums["count"], 1), "epe": metrics["epe"],
                "d1": metrics["d1"]}

    @staticmethod
    def format_validation(sums: dict[str, float]) -> str:
        metrics = rates(sums)
        return (f"Validation: EPE {metrics['epe']:.3f} px, D1 {metrics['d1']:.2f}%, "
                f"bad-3 {metrics['bad3']:.2f}% over {int(sums['pixels'])} pixels "
                f"in {int(sums['count'])} pairs")
