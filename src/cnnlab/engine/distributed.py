"""torchrun support: process-group setup from the environment, sharding and metric reduction."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE_PROCESS = DistInfo()


def init_from_env(device_type: str) -> DistInfo:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); no-op otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank)


def shard_indices(indices: torch.Tensor, info: DistInfo, equal: bool = True) -> torch.Tensor:
    """This rank's share of ``indices``.

    ``equal``: equal-length contiguous shares, the tail dropped, so that DDP's gradient
    all-reduces stay in step (training). Otherwise a strided share that covers every index
    exactly once across ranks (evaluation, where counts are summed afterwards).
    """
    if not info.enabled:
        return indices
    if not equal:
        return indices[info.rank::info.world_size]
    per_rank = len(indices) // info.world_size
    return indices[info.rank * per_rank:(info.rank + 1) * per_rank]


def all_reduce_sums(values: dict[str, float], info: DistInfo, device: torch.device
                    ) -> dict[str, float]:
    """Sum scalar metrics over ranks."""
    if not info.enabled:
        return values
    keys = sorted(values)
    packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    return dict(zip(keys, packed.tolist()))


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Every rank takes rank 0's buffers (BN running statistics), as DDP's forward does."""
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def all_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Whether ``flag`` holds on every rank, so that all ranks stop together when one must."""
    return all_reduce_sums({"flag": float(flag)}, info, device)["flag"] == info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
