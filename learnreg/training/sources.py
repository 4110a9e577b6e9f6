"""Patch sources: where a task's clean training images come from.

A :class:`PatchSource` draws ``count`` patches with a generator it is given
and keeps no random state of its own, so a batch depends on its step's
generator only (:mod:`learnreg.training.batches`) and a resumed run draws the
exact same stream. Built-ins, by ``data.source``:

* ``deadleaves`` -- procedural dead-leaves images (:mod:`learnreg.data.deadleaves`);
* ``folder`` -- random crops, flips and rotations of the images under ``data.path``;
* ``mixed`` -- each patch from the folder with probability ``data.folder_fraction``,
  dead leaves otherwise.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor

from learnreg.training.registry import register_source

if TYPE_CHECKING:  # pragma: no cover
    from learnreg.training.config import DataConfig

logger = logging.getLogger(__name__)

__all__ = ["PatchSource", "DeadLeavesSource", "DeadLeavesPoolSource", "FolderSource", "MixedSource", "build_source"]


@runtime_checkable
class PatchSource(Protocol):
    """Draws clean patches; all randomness comes from the generator passed in.

    Attributes
    ----------
    description : str
        One line for logs and the metadata of exported weights.
    """

    description: str

    def sample(self, count: int, *, generator: torch.Generator) -> Tensor:
        """``count`` patches, shape (count, C, P, P), float32 in [0, 1]."""
        ...


class DeadLeavesSource:
    """Dead-leaves patches generated on the fly (see :func:`learnreg.data.deadleaves.dead_leaves`).

    Parameters
    ----------
    patch_size, channels : int
        Patch side and channels (1 or 3).
    options : dict, optional
        Other :class:`~learnreg.data.deadleaves.DeadLeavesConfig` fields.
    """

    def __init__(self, *, patch_size: int, channels: int, options: dict | None = None):
        from learnreg.data.deadleaves import DeadLeavesConfig

        self.config = DeadLeavesConfig.from_dict({"size": patch_size, "channels": channels,
                                                  **(options or {})})
        self.description = f"dead leaves (procedural), {patch_size}x{patch_size} patches, {channels} channel(s)"

    def sample(self, count: int, *, generator: torch.Generator) -> Tensor:
        from learnreg.data.deadleaves import dead_leaves_batch

        return dead_leaves_batch(self.config, count, generator=generator)


class DeadLeavesPoolSource:
    """Random crops, flips and rotations from a fixed pool of dead-leaves images.

    The pool (``images`` images of ``image_size`` squared) is generated once from
    ``seed``, so it is identical in every process and after a resume; patches are then
    nearly free, which keeps a CPU busy training rather than painting disks.
    """

    def __init__(self, *, patch_size: int, channels: int, images: int, image_size: int, seed: int,
                 options: dict | None = None):
        from learnreg.data.deadleaves import DeadLeavesConfig, dead_leaves_batch

        config = DeadLeavesConfig.from_dict({"size": image_size, "channels": channels, **(options or {})})
        generator = torch.Generator().manual_seed(seed)
        self.pool = torch.cat([dead_leaves_batch(config, min(64, images - start), generator=generator)
                               for start in range(0, images, 64)])
        self.patch_size = patch_size
        self.description = (f"dead leaves (procedural): pool of {images} images {image_size}x{image_size} "
                            f"(seed {seed}), random {patch_size}x{patch_size} crops, flips, rotations, "
                            f"{channels} channel(s)")

    def sample(self, count: int, *, generator: torch.Generator) -> Tensor:
        n, _, size, _ = self.pool.shape
        index = torch.randint(n, (count,), generator=generator)
        top = torch.randint(size - self.patch_size + 1, (count,), generator=generator)
        left = torch.randint(size - self.patch_size + 1, (count,), generator=generator)
        flips = torch.randint(2, (count,), generator=generator)
        turns = torch.randint(4, (count,), generator=generator)
        patches = []
        for i in range(count):
            patch = self.pool[index[i], :, top[i] : top[i] + self.patch_size, left[i] : left[i] + self.patch_size]
            patch = patch.flip(-1) if flips[i] else patch
            patches.append(torch.rot90(patch, int(turns[i]), dims=(-2, -1)))
        return torch.stack(patches).contiguous()


class FolderSource:
    """Random crops (with the 8 flips/rotations) of the images under a folder.

    Parameters
    ----------
    path : str
        Folder searched recursively (see :class:`learnreg.data.folder.ImageFolder`).
    patch_size, channels : int
        Patch side and channels.
    augment : bool
        Random flips and 90-degree rotations.
    cache : bool
        Keep decoded images in memory.
    """

    def __init__(self, path: str, *, patch_size: int, channels: int, augment: bool = True,
                 cache: bool = False):
        from learnreg.data.folder import ImageFolder

        self.folder = ImageFolder(path, patch_size=patch_size, channels=channels,
                                  augment=augment, cache=cache)
        self.description = (f"images under {path} ({len(self.folder.paths)} files), "
                            f"{patch_size}x{patch_size} random crops, {channels} channel(s)")

    def sample(self, count: int, *, generator: torch.Generator) -> Tensor:
        numbers = torch.randint(len(self.folder.paths), (count,), generator=generator)
        return torch.stack([self.folder.patch(int(number), generator=generator) for number in numbers])


class MixedSource:
    """Each patch from ``first`` with probability ``fraction``, else from ``second``."""

    def __init__(self, first: PatchSource, second: PatchSource, *, fraction: float):
        self.first, self.second, self.fraction = first, second, float(fraction)
        self.description = f"{fraction:.0%} {first.description}; {1 - fraction:.0%} {second.description}"

    def sample(self, count: int, *, generator: torch.Generator) -> Tensor:
        from_first = torch.rand(count, generator=generator) < self.fraction
        chosen = int(from_first.sum())
        first = self.first.sample(chosen, generator=generator) if chosen else None
        second = self.second.sample(count - chosen, generator=generator) if chosen < count else None
        reference = first if first is not None else second
        patches = reference.new_empty((count, *reference.shape[1:]))
        if first is not None:
            patches[from_first] = first
        if second is not None:
            patches[~from_first] = second
        return patches


def _deadleaves(config: "DataConfig") -> PatchSource:
    if config.pool_images:
        # the pool seed is tied to the validation seed's complement so that it never equals it
        return DeadLeavesPoolSource(patch_size=config.patch_size, channels=config.channels,
                                    images=config.pool_images, image_size=config.pool_image_size,
                                    seed=config.validation_seed + 1, options=config.deadleaves)
    return DeadLeavesSource(patch_size=config.patch_size, channels=config.channels,
                            options=config.deadleaves)


def _folder(config: "DataConfig") -> PatchSource:
    return FolderSource(config.path, patch_size=config.patch_size, channels=config.channels,
                        cache=config.cache)


def _mixed(config: "DataConfig") -> PatchSource:
    return MixedSource(_folder(config), _deadleaves(config), fraction=config.folder_fraction)


register_source("deadleaves", _deadleaves, replace=True)
register_source("folder", _folder, replace=True)
register_source("mixed", _mixed, replace=True)


def build_source(config: "DataConfig") -> PatchSource:
    """The training :class:`PatchSource` that ``config.source`` names."""
    from learnreg.training.registry import source_builder

    source = source_builder(config.source)(config)
    logger.info("training data: %s", source.description)
    return source
