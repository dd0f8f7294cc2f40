"""Data-parallel training under ``torchrun``: the few collectives the loop needs.

``torchrun --nproc_per_node N -m t2i train ...`` starts N copies of the same
program and tells each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``.
:func:`init_from_env` joins them into one process group (NCCL on GPUs, gloo
on CPUs); without torchrun every function here is a no-op, so the single
process path is the same code.

How :func:`t2i.train.fit` uses them, step by step:

1. every rank builds the same model, then takes rank 0's weights
   (:func:`broadcast_tensors`), so they start identical whatever their seeds;
2. every rank computes the same global batch of indices from ``(seed, step)``
   and keeps its own slice of it (:func:`shard`);
3. after each backward pass, each optimiser group's gradients are averaged
   over the ranks (:func:`average_gradients`). With equal slices and a loss
   that is a mean over examples, that is the gradient of the global batch,
   so N ranks take the same step one process would take on the whole batch.
   This is what ``DistributedDataParallel``'s reducer does; the loop calls
   the collective itself because the two-player models (the VQGAN) send two
   losses backward into two parameter sets per forward pass, and DDP's
   reducer expects one backward per forward;
4. a codebook trained by moving averages sums its statistics over all ranks
   (:func:`all_reduce_sum`), so its codes follow the global batch too;
5. only rank 0 reads and writes files; what it read reaches the others by
   :func:`broadcast_object`, so the ranks need no shared file system.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist

# gradients are averaged in flat buckets of at most this many numbers
BUCKET_NUMBERS = 2**24


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0, the one process that prints, reads and writes files."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env() -> None:
    """Join torchrun's process group (a no-op outside torchrun or if joined)."""
    if not launched_by_torchrun() or is_distributed():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_device())
        # NCCL for GPU tensors, gloo for CPU ones (a run with device="cpu")
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")


def close() -> None:
    if is_distributed():
        dist.destroy_process_group()


def local_device() -> torch.device:
    """This process's GPU under torchrun (``cuda:LOCAL_RANK``)."""
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a global batch of indices (equal slices)."""
    count = world_size()
    if count == 1:
        return indices
    if len(indices) % count:
        raise ValueError(
            f"the batch of {len(indices)} does not split evenly over {count} "
            f"processes; make batch_size a multiple of {count} (the batch size is "
            f"global: each process takes batch_size / {count} examples)"
        )
    return indices.chunk(count)[rank()]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place; returns it."""
    if is_distributed():
        dist.all_reduce(tensor)
    return tensor


def average_gradients(parameters: Iterable[torch.Tensor]) -> None:
    """Replace each gradient by its mean over the ranks (flat buckets, one
    collective per bucket instead of one per tensor).

    A parameter that got no gradient on some ranks (a branch their slice of
    the batch did not take) counts as a zero gradient there; one that got
    none on any rank keeps none, as it would in one process."""
    if not is_distributed():
        return
    parameters = list(parameters)
    if not parameters:
        return
    device = parameters[0].device
    present = torch.tensor([p.grad is not None for p in parameters], device=device)
    present = all_reduce_sum(present.to(torch.int32)).tolist()
    for parameter, ranks in zip(parameters, present):
        if ranks and parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    grads = [p.grad for p, ranks in zip(parameters, present) if ranks]
    count = world_size()
    for bucket in _buckets(grads):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat /= count
        for grad, average in zip(bucket, flat.split([g.numel() for g in bucket])):
            grad.copy_(average.view_as(grad))


def _buckets(tensors: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for tensor in tensors:
        if bucket and (
            size + tensor.numel() > BUCKET_NUMBERS or tensor.dtype != bucket[0].dtype
        ):
            yield bucket
            bucket, size = [], 0
        bucket.append(tensor)
        size += tensor.numel()
    if bucket:
        yield bucket


def broadcast_tensors(tensors: Iterable[torch.Tensor]) -> None:
    """Overwrite ``tensors`` on every rank with rank 0's values."""
    if is_distributed():
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


def broadcast_module(model: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers, on every rank (model on its device)."""
    broadcast_tensors([*model.parameters(), *model.buffers()])


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object), returned on every rank."""
    if not is_distributed():
        return value
    box = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, returned on every rank."""
    if not is_distributed():
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def rank_zero_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. a download), then the others do."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()
