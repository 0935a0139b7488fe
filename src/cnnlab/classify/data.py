"""In-memory classification data: uint8 tensors on the device, batched augmentation.

Each split is decoded once; batches are gathered by index on the device, augmented there
(random translation by pad-and-crop, horizontal flips where label-preserving), converted to
float, normalised and resized in one go, instead of per-sample PIL transforms.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from cnnlab.data.vision import VisionSpec, get_spec, load_split
from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo, shard_indices
from cnnlab.errors import ConfigError


@dataclass
class Augment:
    translate: int = 0  # max shift in pixels (pad-and-crop)
    hflip: bool = False


@dataclass
class Preprocess:
    """How uint8 (N, C, H, W) images become model input."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: int  # model input size (square)
    channels: int  # model input channels
    _constants: dict = field(default_factory=dict, repr=False, compare=False)

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalisation constants on ``device``, built once (not per batch)."""
        if device not in self._constants:
            mean, std = torch.tensor(self.mean), torch.tensor(self.std)
            if len(self.mean) != self.channels:  # data converted to another channel count
                mean, std = mean.mean().expand(self.channels), std.mean().expand(self.channels)
            self._constants[device] = (mean.view(1, -1, 1, 1).to(device),
                                       std.view(1, -1, 1, 1).to(device))
        return self._constants[device]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0)
        if x.shape[1] != self.channels:
            x = convert_channels(x, self.channels)
        mean, std = self._mean_std(x.device)
        x = (x - mean) / std
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=x.shape[-1] > self.size)
        return x


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by luma weights."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if x.shape[1] == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
        return (x * weights.view(1, 3, 1, 1)).sum(1, keepdim=True)
    raise ConfigError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")


def random_translate(images: torch.Tensor, shift: int, generator: torch.Generator
                     ) -> torch.Tensor:
    """Shift each image by an independent random offset in [-shift, shift] (zero fill)."""
    if shift <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, (shift, shift, shift, shift))
    offsets = torch.randint(0, 2 * shift + 1, (2, n), generator=generator).to(images.device)
    rows = offsets[0].view(n, 1) + torch.arange(h, device=images.device).view(1, h)
    cols = offsets[1].view(n, 1) + torch.arange(w, device=images.device).view(1, w)
    batch_index = torch.arange(n, device=images.device).view(n, 1, 1)
    # advanced indexing on (N, H, W) picks (N, H, W, C); move channels back
    out = padded.permute(0, 2, 3, 1)[batch_index, rows.view(n, h, 1), cols.view(n, 1, w)]
    return out.permute(0, 3, 1, 2).contiguous()


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(images.shape[0], generator=generator).to(images.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


class TensorSplit:
    """A split resident on the device as uint8 images and int64 labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device):
        if len(images) != len(labels):
            raise ConfigError(f"{len(images)} images but {len(labels)} labels")
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.device = device

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, preprocess: Preprocess, generator: torch.Generator | None
                = None, augment: Augment | None = None, info: DistInfo = SINGLE_PROCESS,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled (with ``generator``) or ordered batches of (input, labels)."""
        if generator is not None:
            order = torch.randperm(len(self), generator=generator)
        else:
            order = torch.arange(len(self))
        order = shard_indices(order, info, equal=generator is not None).to(self.device)
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            index = order[start:start + batch_size]
            images = self.images.index_select(0, index)
            if augment is not None and generator is not None:
                images = random_translate(images, augment.translate, generator)
                if augment.hflip:
                    images = random_hflip(images, generator)
            yield preprocess(images), self.labels.index_select(0, index)

    def num_batches(self, batch_size: int, info: DistInfo = SINGLE_PROCESS,
                    drop_last: bool = False) -> int:
        n = len(self) // info.world_size if info.enabled else len(self)  # training shares
        return n // batch_size if drop_last else -(-n // batch_size)


def split_validation(images: torch.Tensor, labels: torch.Tensor, val_size: int, seed: int = 0):
    """Carve a fixed, seeded validation subset out of a training split."""
    if not 0 < val_size < len(labels):
        raise ConfigError(f"must be between 1 and {len(labels) - 1}, got {val_size}",
                          parameter="val_size")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    val, train = order[:val_size], order[val_size:]
    return (images[train], labels[train]), (images[val], labels[val])


@dataclass
class ClassifyData:
    spec: VisionSpec
    train: TensorSplit
    val: TensorSplit | None
    test: TensorSplit


def load_classify_data(dataset: str, device: torch.device, data_root=None, download=False,
                       val_size: int = 0, seed: int = 0, load_train: bool = True,
                       limit: int | None = None, test_limit: int | None = None
                       ) -> ClassifyData:
    """Decode the dataset once and place it on ``device``; ``limit`` keeps the first images
    of the training set (before any validation split) and ``test_limit`` those of the test
    set, for quick runs without writing a smaller copy."""
    spec = get_spec(dataset)
    test = TensorSplit(*first(load_split(dataset, "test", data_root, download), test_limit,
                              "test_limit"), device)
    val = train = None
    if load_train:
        images, labels = first(load_split(dataset, "train", data_root, download), limit,
                               "limit")
        if val_size:
            (images, labels), (vi, vl) = split_validation(images, labels, val_size, seed)
            val = TensorSplit(vi, vl, device)
        train = TensorSplit(images, labels, device)
    return ClassifyData(spec, train, val, test)


def first(split: tuple[torch.Tensor, torch.Tensor], count: int | None, parameter: str
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` (images, labels) of a split; None keeps all."""
    if count is None:
        return split
    images, labels = split
    if not 1 <= count <= len(labels):
        raise ConfigError(f"must be between 1 and {len(labels)} (the images there are), got "
                          f"{count}", parameter=parameter)
    return images[:count], labels[:count]
