"""The stream of training batches: one seeded generator per step, optionally in worker processes.

Batch ``k`` of process ``rank`` is ``task.make_batch(step_generator(seed, rank, k))``:
a fresh generator seeded from ``(seed, rank, k)`` alone. The stream is thus a
pure function of the step, which gives

* exact resumption from the step counter alone (nothing about the data
  stream needs checkpointing), and
* the same batches whether they are drawn in the main process
  (``data.workers = 0``) or ahead of time by ``data.workers`` background
  processes, which a :class:`~torch.utils.data.DataLoader` over step numbers
  delivers in step order. Procedural data (dead leaves) is slow to draw on
  the CPU; workers keep a GPU fed without giving up reproducibility.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["step_generator", "to_device", "BatchStream"]

_TAG = 0x6C72_6261  # separates batch streams from the other seeds derived from the run's seed


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The CPU generator of batch ``step`` (1-based) of process ``rank``."""
    state = np.random.SeedSequence([int(seed), int(rank), int(step), _TAG]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor moved to ``device`` (tensors, dataclasses, tuples, lists, dicts)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return type(batch)(**{field.name: to_device(getattr(batch, field.name), device)
                              for field in dataclasses.fields(batch) if field.init})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # named tuple
        return type(batch)(*(to_device(item, device) for item in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(item, device) for key, item in batch.items()}
    return batch


class _Steps(Dataset):
    """Item ``k`` is batch ``k``: ``task.make_batch(step_generator(seed, rank, k))``."""

    def __init__(self, task: Any, *, seed: int, rank: int):
        self.task, self.seed, self.rank = task, seed, rank

    def __getitem__(self, step: int) -> Any:
        return self.task.make_batch(step_generator(self.seed, self.rank, step))


class BatchStream:
    """Batches of steps ``start + 1 .. stop`` in order, on ``device``.

    Parameters
    ----------
    task : Task
        Draws a batch with ``make_batch(generator)`` (CPU tensors).
    seed, rank : int
        The run's seed and this process's rank.
    start, stop : int
        The last step done and the last step to draw.
    device : torch.device
        Where batches are delivered.
    workers : int
        Background processes drawing batches ahead (0: draw in this process
        when needed). With workers the task is copied into each of them (it
        must be picklable where processes are spawned), and a task's own
        random state, if any, is not carried back.

    Examples
    --------
    >>> class Noise:
    ...     def make_batch(self, generator):
    ...         return torch.rand(2, generator=generator)
    >>> first = [batch for _, batch in BatchStream(Noise(), seed=0, rank=0, start=0, stop=3)]
    >>> again = [batch for _, batch in BatchStream(Noise(), seed=0, rank=0, start=1, stop=3)]
    >>> all(torch.equal(a, b) for a, b in zip(first[1:], again))
    True
    """

    def __init__(self, task: Any, *, seed: int, rank: int, start: int, stop: int,
                 device: torch.device = torch.device("cpu"), workers: int = 0):
        if workers < 0:
            raise ValueError(f"BatchStream: workers must be >= 0, got {workers}")
        self.task, self.seed, self.rank = task, int(seed), int(rank)
        self.start, self.stop, self.device, self.workers = int(start), int(stop), device, int(workers)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        steps = range(self.start + 1, self.stop + 1)
        if self.workers == 0 or len(steps) == 0:
            for step in steps:
                batch = self.task.make_batch(step_generator(self.seed, self.rank, step))
                yield step, to_device(batch, self.device)
            return
        loader = DataLoader(_Steps(self.task, seed=self.seed, rank=self.rank), sampler=steps,
                            batch_size=None, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda",
                            # its own generator: the loader draws a worker seed, which would
                            # otherwise come from (and shift) the global RNG that dropout uses
                            generator=torch.Generator().manual_seed(0))
        for step, batch in zip(steps, loader):  # the loader keeps the sampler's order
            yield step, to_device(batch, self.device)
