"""engine/distributed.py: sharding under torchrun."""

import torch


def test_shard_indices_cover_everything_for_eval():
    from cnnlab.engine.distributed import DistInfo, shard_indices

    indices = torch.arange(11)
    eval_shares = [shard_indices(indices, DistInfo(r, 3), equal=False) for r in range(3)]
    assert sorted(torch.cat(eval_shares).tolist()) == list(range(11))
    train_shares = [shard_indices(indices, DistInfo(r, 3)) for r in range(3)]
    assert {len(s) for s in train_shares} == {3}
    assert len(set(torch.cat(train_shares).tolist())) == 9
