"""Stereo training data through ``torch.utils.data``: crops and jitter per pair in workers.

``TrainingPairs[i]`` reads one pair, crops and jitters it, with a generator seeded from
(seed, epoch, i): a batch is the same whichever worker made it and however many workers there
are, and a resumed run sees the same pairs as an uninterrupted one. ``EpochSampler`` is a
``DistributedSampler`` (one share per rank under torchrun, so a rank reads only its own pairs)
that also tells the dataset the epoch, which persistent workers could not learn otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo
from cnnlab.stereo.data.datasets import StereoDataset, StereoSample
from cnnlab.stereo.data.preprocess import Normalize
from cnnlab.stereo.training.losses import valid_mask

# (left, right): (3, H, W) normalised float; disparity (H, W) float32; mask (H, W) bool
Pair = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """An independent random stream for item ``index`` of ``epoch`` in a run seeded ``seed``."""
    state = np.random.SeedSequence([seed % 2**32, epoch, index]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@contextlib.contextmanager
def single_thread():
    """Run torch ops on one thread (DataLoader workers always do), restoring the count after:
    reductions split over threads round differently, and a pair must not depend on where it
    was made."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(torch.empty(1).uniform_(low, high, generator=generator))


def random_crop(sample: StereoSample, crop: tuple[int, int], generator: torch.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


def photometric_jitter(left: torch.Tensor, right: torch.Tensor, generator: torch.Generator
                       ) -> list[torch.Tensor]:
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


@dataclass
class Augmentor:
    """A random crop of ``crop`` (H, W) and, with ``jitter``, photometric jitter."""

    crop: tuple[int, int]
    jitter: bool = True

    def __call__(self, sample: StereoSample, normalize: Normalize, max_disparity: int,
                 generator: torch.Generator) -> Pair:
        left, right, disparity, valid = random_crop(sample, self.crop, generator)
        left, right = Normalize.unit(left), Normalize.unit(right)
        if self.jitter:
            left, right = photometric_jitter(left, right, generator)
        target = torch.from_numpy(np.array(disparity, dtype=np.float32))  # a copy: never a view
        mask = torch.from_numpy(np.ascontiguousarray(valid)) & valid_mask(target, max_disparity)
        return normalize(left), normalize(right), target, mask


class TrainingPairs(Dataset):
    """``samples_per_epoch`` items per epoch, each a pair drawn at random from ``source`` and
    augmented; index ``epoch * samples_per_epoch + i`` is item i of that epoch.

    ``cache`` keeps decoded pairs in this process: worth it for a small real dataset read in
    the training process (decoding a KITTI pair takes ~25 ms, a small network's step on a CPU
    ~0.5 s per batch of 4), and the caller's choice because each worker would hold its own.
    """

    def __init__(self, source: StereoDataset, augmentor: Augmentor, samples_per_epoch: int,
                 max_disparity: int, seed: int, normalize: Normalize | None = None,
                 cache: bool = False):
        self.source, self.augmentor = source, augmentor
        self.samples_per_epoch, self.max_disparity, self.seed = (samples_per_epoch,
                                                                 max_disparity, seed)
        self.normalize = normalize or Normalize()
        self._cache: dict[int, StereoSample] | None = {} if cache else None

    def _load(self, index: int) -> StereoSample:
        if self._cache is None:
            return self.source.load(index)
        if index not in self._cache:
            self._cache[index] = self.source.load(index)
        return self._cache[index]

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> Pair:
        epoch, item = divmod(index, self.samples_per_epoch)
        generator = item_generator(self.seed, epoch, item)
        with single_thread():  # as in a worker: float sums do not depend on the thread count
            pick = int(torch.randint(len(self.source), (1,), generator=generator))
            return self.augmentor(self._load(pick), self.normalize, self.max_disparity,
                                  generator)


class EpochSampler(DistributedSampler):
    """This rank's share of an epoch's items (DistributedSampler), offset by the epoch."""

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * len(self.dataset)
        return (offset + index for index in super().__iter__())


def train_loader(pairs: TrainingPairs, batch_size: int, info: DistInfo = SINGLE_PROCESS,
                 workers: int = 0, pin_memory: bool = False) -> tuple[DataLoader, EpochSampler]:
    """Batches of this rank's items; call ``sampler.set_epoch(e)`` before epoch e."""
    sampler = EpochSampler(pairs, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                           seed=pairs.seed, drop_last=True)
    loader = DataLoader(pairs, batch_size=batch_size, sampler=sampler, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=pin_memory)
    return loader, sampler


class ValidationPairs(Dataset):
    """Whole pairs (no crop, no jitter) of ``source``'s first ``count``, normalised."""

    def __init__(self, source: StereoDataset, count: int, max_disparity: int,
                 normalize: Normalize | None = None):
        self.source, self.count, self.max_disparity = source, min(count, len(source)), \
            max_disparity
        self.normalize = normalize or Normalize()

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Pair:
        with single_thread():
            sample = self.source.load(index)
        target = torch.from_numpy(sample.disparity)
        mask = torch.from_numpy(sample.valid) & valid_mask(target, self.max_disparity)
        return (self.normalize(Normalize.unit(sample.left)),
                self.normalize(Normalize.unit(sample.right)), target, mask)


def read_validation(pairs: ValidationPairs, info: DistInfo = SINGLE_PROCESS, workers: int = 0
                    ) -> list[Pair]:
    """This rank's validation pairs (every world_size-th), read once, as batches of one."""
    shard = list(range(info.rank, len(pairs), info.world_size))
    loader = DataLoader(pairs, batch_size=1, sampler=shard, num_workers=min(workers, len(shard)))
    return list(loader)
