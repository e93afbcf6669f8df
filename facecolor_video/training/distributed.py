"""The processes of a training run: this one's place in a torchrun launch, and the image-loading workers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..devices import resolve_device


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a torchrun launch: rank 0 of 1 when torchrun did not start it."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of ``value`` over all processes."""
        if not self.enabled:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.item() / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on one (so that all stop at the same step)."""
        if not self.enabled:
            return flag
        flags = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags.item())

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def distributed_context(device_name: str = "auto") -> DistributedContext:
    """Rank, world size and device; joins the process group when torchrun launched several processes.

    On CUDA each process takes GPU ``LOCAL_RANK`` and talks over NCCL; on the CPU over gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world_size <= 1:
        return DistributedContext(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), device)


def one_thread_per_worker(worker_id: int) -> None:
    # An image-loading process crops and resizes with torch ops: left at the default
    # thread count, every worker's threads compete with the training step's for the
    # same cores, and on a 2-core CPU a 64-image epoch took over 10 minutes instead of 30 s.
    torch.set_num_threads(1)
