"""stereo/pipeline.py: training pairs through torch.utils.data, the same wherever they are made."""

import numpy as np
import torch
from tests.conftest import shared_path

from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo
from cnnlab.stereo.data.datasets import KITTI2015, StereoSample, SyntheticStereo
from cnnlab.stereo.training.pipeline import (
    Augmentor,
    TrainingPairs,
    ValidationPairs,
    item_generator,
    read_validation,
    train_loader,
)

MAX_DISPARITY = 48


def _pairs(samples_per_epoch=12, seed=3, jitter=True):
    source = SyntheticStereo(50, 48, 96, 30.0, seed=0)
    return TrainingPairs(source, Augmentor((32, 64), jitter), samples_per_epoch, MAX_DISPARITY,
                         seed)


def _epoch(pairs, epoch, batch_size=2, info=SINGLE_PROCESS, workers=0):
    loader, sampler = train_loader(pairs, batch_size, info, workers)
    sampler.set_epoch(epoch)
    return list(loader)


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))


def test_batches_do_not_depend_on_the_worker_count():
    pairs = _pairs()
    in_process = _epoch(pairs, 1)
    assert len(in_process) == 6 and in_process[0][0].shape == (2, 3, 32, 64)
    assert _same(in_process, _epoch(pairs, 1, workers=2))


def test_epochs_differ_and_repeat_exactly():
    pairs = _pairs()
    assert _same(_epoch(pairs, 0), _epoch(pairs, 0))  # a resumed epoch sees the same pairs
    assert not torch.equal(_epoch(pairs, 0)[0][0], _epoch(pairs, 1)[0][0])
    assert not torch.equal(_epoch(_pairs(seed=4), 0)[0][0], _epoch(pairs, 0)[0][0])


def test_ranks_get_disjoint_shares_of_the_epoch():
    """Under torchrun each rank reads only its own pairs (DistributedSampler)."""
    pairs = _pairs(samples_per_epoch=13)
    seen = []
    for rank in range(3):
        loader, sampler = train_loader(pairs, 2, DistInfo(rank, 3))
        sampler.set_epoch(2)
        indices = list(sampler)
        assert len(loader) == 2 and len(indices) == 4  # 13 // 3, whole batches only
        seen += indices
    assert len(set(seen)) == 12 and all(2 * 13 <= i < 3 * 13 for i in seen)


def test_crops_keep_images_and_ground_truth_aligned():
    """Without jitter a crop is an exact window of the pair, its mask within the range."""
    source = SyntheticStereo(4, 48, 96, 30.0, seed=0)
    pairs = TrainingPairs(source, Augmentor((32, 64), jitter=False), 4, MAX_DISPARITY, 0)
    left, _, target, mask = pairs[1]
    generator = item_generator(0, 0, 1)
    sample = source.load(int(torch.randint(len(source), (1,), generator=generator)))
    top = int(torch.randint(0, 48 - 32 + 1, (1,), generator=generator))
    start = int(torch.randint(0, 96 - 64 + 1, (1,), generator=generator))
    assert np.array_equal(target.numpy(), sample.disparity[top:top + 32, start:start + 64])
    expected = pairs.normalize(pairs.normalize.unit(sample.left[top:top + 32,
                                                                start:start + 64]))
    assert torch.equal(left, expected)
    assert mask.any() and bool((target[mask] < MAX_DISPARITY).all())


def test_small_images_are_padded_and_padding_never_supervises():
    tiny = StereoSample("tiny", np.full((10, 20, 3), 128, np.uint8),
                        np.full((10, 20, 3), 128, np.uint8), np.full((10, 20), 5, np.float32),
                        np.ones((10, 20), bool))

    class One(SyntheticStereo):
        def load(self, index):
            return tiny

    pairs = TrainingPairs(One(1), Augmentor((16, 32), jitter=False), 1, MAX_DISPARITY, 0)
    _, _, target, mask = pairs[0]
    assert target.shape == (16, 32) and int(mask.sum()) == 200


def test_validation_shards_cover_every_pair_once():
    source = SyntheticStereo(5, 32, 64, 20.0, seed=9)
    pairs = ValidationPairs(source, 5, MAX_DISPARITY)
    shards = [read_validation(pairs, DistInfo(rank, 2)) for rank in range(2)]
    assert [len(s) for s in shards] == [3, 2]
    assert torch.equal(shards[1][0][2][0], torch.from_numpy(source.load(1).disparity))


def test_real_kitti_pairs_through_workers():
    root = shared_path("KITTI2015")
    pairs = TrainingPairs(KITTI2015(root, "train"), Augmentor((64, 128)), 4, 192, 0)
    batches = _epoch(pairs, 0, batch_size=2, workers=2)
    left, right, target, mask = batches[0]
    assert left.shape == right.shape == (2, 3, 64, 128) and target.dtype == torch.float32
    assert mask.dtype == torch.bool and bool((target[mask] > 0).all())


def test_item_streams_are_independent():
    a = torch.rand(4, generator=item_generator(1, 0, 0))
    b = torch.rand(4, generator=item_generator(1, 0, 1))
    c = torch.rand(4, generator=item_generator(1, 1, 0))
    assert not torch.equal(a, b) and not torch.equal(a, c)
