"""Data-parallel training over processes (``torchrun --nproc_per_node=N``).

When the environment has ``WORLD_SIZE > 1`` (with ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``, as ``torchrun`` sets them), the training
loop

* joins the process group (gloo on CPU, NCCL on CUDA when available),
* wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`,
  which averages gradients over the processes,
* gives each process its own data stream (batch ``k`` of rank ``r`` is drawn
  with a generator seeded from ``(seed, r, k)``, see
  :mod:`learnreg.training.batches`) and ``batch_size / world_size`` patches per step,
* writes checkpoints, logs and weights from rank 0 only, with a barrier after
  each checkpoint so no process runs ahead of a checkpoint on disk.

With one process all of this reduces to plain training; the helpers here then
do nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "DistributedContext", "environment_context", "setup", "teardown", "wrap_model", "unwrap",
    "per_rank_batch", "rank_seed", "barrier", "all_gather_objects", "broadcast_object",
    "all_reduce_sum", "resolve_device",
]


@dataclass(frozen=True)
class DistributedContext:
    """This process among the data-parallel processes.

    Attributes
    ----------
    rank, world_size, local_rank : int
        As ``torchrun`` sets them; ``0, 1, 0`` without distribution.
    owns_group : bool
        Whether :func:`setup` created the process group (and :func:`teardown`
        must destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the process that writes files."""
        return self.rank == 0


def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer") from None


def environment_context() -> DistributedContext:
    """The context that ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` describe (no group is joined)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(),
                                  _environment_int("LOCAL_RANK", dist.get_rank()))
    world_size = _environment_int("WORLD_SIZE", 1)
    rank = _environment_int("RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"inconsistent distributed environment: RANK={rank}, WORLD_SIZE={world_size}")
    return DistributedContext(rank, world_size, _environment_int("LOCAL_RANK", rank))


def resolve_device(name: str, context: DistributedContext) -> torch.device:
    """The device a recipe's ``device`` means for this process.

    ``"auto"`` is CUDA when available, else CPU; plain ``"cuda"`` is the GPU
    ``LOCAL_RANK`` in a distributed run (one GPU per process).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device: cpu")
        if name == "cuda":
            name = f"cuda:{context.local_rank if context.distributed else torch.cuda.current_device()}"
    return torch.device(name)


def setup(*, device: torch.device) -> DistributedContext:
    """Join the process group the environment describes, if any and not joined yet.

    Parameters
    ----------
    device : torch.device
        The training device: NCCL serves CUDA when available, gloo everything else.

    Returns
    -------
    DistributedContext
    """
    context = environment_context()
    if not context.distributed or dist.is_initialized():
        return context
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE > 1 but {', '.join(missing)} not set; launch with "
                           "torchrun --nproc_per_node=N -m learnreg.training RECIPE")
    dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size)
    logger.info("joined process group: rank %d of %d (%s)", context.rank, context.world_size, backend)
    return DistributedContext(context.rank, context.world_size, context.local_rank, owns_group=True)


def teardown(context: DistributedContext) -> None:
    """Leave the process group if :func:`setup` created it."""
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, context: DistributedContext, *, device: torch.device) -> nn.Module:
    """``model`` in :class:`DistributedDataParallel` when distributed, else ``model`` itself.

    DDP broadcasts rank 0's parameters and buffers at construction, so all
    processes start from the same weights, and averages gradients in ``backward``.
    """
    if not context.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or ``model`` itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """``batch_size / world_size``; ``ValueError`` when it does not divide."""
    if batch_size % world_size:
        raise ValueError(f"data.batch_size = {batch_size} is the total over {world_size} processes and "
                         f"must be divisible by it; use a multiple of {world_size}")
    return batch_size // world_size


def rank_seed(seed: int, rank: int, *, stream: str = "train") -> int:
    """A 63-bit seed for ``stream`` of process ``rank``, decorrelated by :class:`numpy.random.SeedSequence`."""
    entropy = [int(seed), int(rank), *stream.encode()]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def barrier(context: DistributedContext) -> None:
    """Wait for all processes (no-op with one)."""
    if context.distributed:
        dist.barrier()


def all_gather_objects(value: Any, context: DistributedContext) -> list[Any]:
    """Every process's ``value``, in rank order (``[value]`` with one process)."""
    if not context.distributed:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_object(value: Any, context: DistributedContext) -> Any:
    """Rank 0's ``value`` on every process."""
    if not context.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """The sum of ``tensor`` over processes (a new tensor; ``tensor`` itself with one process)."""
    if not context.distributed:
        return tensor
    total = tensor.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total
