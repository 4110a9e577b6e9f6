"""The training loop: one function, :func:`train`, for every learned method.

:func:`train` builds the model, the task and the optimizer from a
:class:`~learnreg.training.config.TrainConfig` (through the registries of
:mod:`learnreg.training.registry`), then runs ``config.steps`` optimizer steps
with periodic logging, validation and checkpoints, in one process or, under
``torchrun``, data-parallel over several (:mod:`learnreg.training.distributed`).

Exact resume
------------
The randomness of a step comes from two places, both reproducible: the
batch, drawn by ``task.make_batch`` with a generator seeded from ``(seed,
rank, step)`` alone (:mod:`learnreg.training.batches`), and PyTorch's global
CPU (and CUDA) generator, used by dropout and the like, which the run forks
(:func:`torch.random.fork_rng`, so the caller's state is untouched), seeds
itself and checkpoints per process. A run killed at any point and continued
with ``train(config, resume=True)`` therefore ends with weights bitwise
identical to an uninterrupted run on the same machine and thread count (CUDA
kernels may break this unless they are deterministic), whether batches are
drawn in the training process or by ``data.workers`` background processes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

import torch
from torch import nn

from learnreg.training import distributed, registry
from learnreg.training.batches import BatchStream
from learnreg.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    check_resumable,
    list_checkpoints,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from learnreg.training.config import TrainConfig, load_config, save_config
from learnreg.training.export import export_config, ship_weights
from learnreg.training.optim import build_optimizer, build_scheduler
from learnreg.training.runlog import RunLog
from learnreg.training.tasks import Task, TaskContext

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "train"]

PathLike = Union[str, "os.PathLike[str]"]



@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : nn.Module
        The trained network (unwrapped from DDP), in eval mode.
    step : int
        The last step done.
    completed : bool
        ``step == config.steps`` (false when ``stop_after`` ended the run early).
    metrics : dict of str to float
        The last validation scores (empty if none ran, and on ranks other
        than 0, which do not validate).
    output_dir, log_path : Path
        The run directory and its ``log.csv``.
    checkpoint : Path or None
        The last checkpoint written or resumed from.
    wall_s : float
        Wall time over all sessions of the run (up to the last step).
    patches_per_s : float
        Training throughput over all processes, validation excluded.
    shipped : Path or None
        The JSON record of the exported weights, when ``config.ship`` is set.
    """

    model: nn.Module
    step: int
    completed: bool
    metrics: dict[str, float]
    output_dir: Path
    log_path: Path
    checkpoint: Path | None
    wall_s: float
    patches_per_s: float
    shipped: Path | None


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class _Meter:
    """What happened since the last row of the log (not checkpointed: every checkpoint ends a row)."""

    loss_sum: torch.Tensor
    steps: int = 0
    patches: int = 0
    seconds: float = 0.0

    def add(self, loss: torch.Tensor, *, patches: int, seconds: float) -> None:
        self.loss_sum += loss.to(torch.float64)  # no host sync per step
        self.steps += 1
        self.patches += patches
        self.seconds += seconds

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.steps, self.patches, self.seconds = 0, 0, 0.0


class _Run:
    """The state of one training session (one call of :func:`train`)."""

    def __init__(self, config: TrainConfig, context: distributed.DistributedContext,
                 device: torch.device, recipe: str | None):
        self.config, self.context, self.device, self.recipe = config, context, device, recipe
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.log_path = self.output_dir / "log.csv"
        init_generator = torch.default_generator  # forked by train(): the caller's state is kept
        init_generator.manual_seed(distributed.rank_seed(config.seed, 0, stream="init"))
        self.model = registry.build_model(config.model.architecture, config.model.options).to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if config.ship is not None:
            export_config(self.model)  # fail now (in every process), not after training
        # per-process global stream (dropout and the like), after the shared initialisation
        init_generator.manual_seed(distributed.rank_seed(config.seed, context.rank, stream="global"))
        if device.type == "cuda":
            torch.cuda.manual_seed(distributed.rank_seed(config.seed, context.rank, stream="cuda"))
        batch = distributed.per_rank_batch(config.data.batch_size, context.world_size)
        self.task: Task = registry.task_spec(config.task.name).builder(
            config, TaskContext(batch_size=batch, device=device, rank=context.rank,
                                world_size=context.world_size))
        if not isinstance(self.task, Task):
            missing = [name for name in ("metric_names", "training_data", "make_batch", "loss", "validate")
                       if not hasattr(self.task, name)]
            raise TypeError(f"task {config.task.name!r} built a {type(self.task).__name__} that lacks "
                            f"{missing} of the Task protocol (learnreg.training.tasks.Task)")
        self.optimizer = build_optimizer(self.model.parameters(), config.optim)
        self.scheduler = build_scheduler(self.optimizer, config.optim, steps=config.steps)
        self.step, self.wall_before, self.train_before, self.patches = 0, 0.0, 0.0, 0
        self.checkpoint: Path | None = None
        self.log_bytes: int | None = None

    # -- checkpoints ---------------------------------------------------------------------------
    def _rank_state(self) -> dict[str, Any]:
        state_dict = getattr(self.task, "state_dict", None)
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "task": state_dict() if callable(state_dict) else {},
        }

    def save(self, *, log: RunLog, wall_s: float, train_s: float) -> None:
        """All processes: gather the per-process RNG states; rank 0 writes; then a barrier."""
        states = distributed.all_gather_objects(self._rank_state(), self.context)
        if self.context.is_main:
            state = {
                "format": CHECKPOINT_FORMAT, "step": self.step, "world_size": self.context.world_size,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "config": self.config.to_dict(),
                "rng": states, "log": {"bytes": log.position()},
                "wall_s": wall_s, "train_s": train_s, "patches": self.patches,
            }
            self.checkpoint = save_checkpoint(state, self.checkpoint_dir, step=self.step,
                                              keep=self.config.keep_checkpoints)
        distributed.barrier(self.context)

    def restore(self, resume: bool) -> None:
        """Find the checkpoint to continue from (rank 0 decides) and load it everywhere."""
        plan: dict[str, Any] = {"path": None, "error": None}
        if self.context.is_main:
            remove_stale_temporaries(self.checkpoint_dir)
            found = list_checkpoints(self.checkpoint_dir)
            if found and not resume:
                plan["error"] = (f"{self.output_dir} already holds checkpoints of a run (last: "
                                 f"{found[-1].name}); pass resume=True (--resume) to continue it, "
                                 "or choose another output_dir")
            for path in reversed(found if resume else []):
                try:
                    load_checkpoint(path)
                except CheckpointError as error:
                    logger.warning("skipping unreadable checkpoint: %s", error)
                    continue
                plan["path"] = str(path)
                break
            if resume and plan["path"] is None:
                logger.info("no checkpoint in %s: starting from step 0", self.checkpoint_dir)
        plan = distributed.broadcast_object(plan, self.context)
        if plan["error"]:
            raise FileExistsError(plan["error"])
        if plan["path"] is None:
            initialize = getattr(self.task, "initialize", None)
            if callable(initialize):
                initialize(self.model)  # a fresh run: the task's pretrained start, in every process
            return
        path = Path(plan["path"])
        state = load_checkpoint(path)
        check_resumable(state["config"], self.config.to_dict(), path=path)
        if state["world_size"] != self.context.world_size:
            raise ValueError(f"{path} was written by {state['world_size']} processes; resume it with "
                             f"the same number (torchrun --nproc_per_node={state['world_size']})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        mine = state["rng"][self.context.rank]
        torch.set_rng_state(mine["torch"])
        if mine["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"], self.device)
        load_state_dict = getattr(self.task, "load_state_dict", None)
        if callable(load_state_dict):
            load_state_dict(mine["task"])
        self.step, self.patches = int(state["step"]), int(state["patches"])
        self.wall_before, self.train_before = float(state["wall_s"]), float(state["train_s"])
        self.log_bytes = int(state["log"]["bytes"])
        self.checkpoint = path
        logger.info("resuming from %s (step %d)", path, self.step)

    # -- the loop ------------------------------------------------------------------------------
    def _train_step(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """One optimizer step on one batch; the loss, detached."""
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            loss = self.task.loss(model, batch)
        loss = loss.float()
        loss.backward()
        if self.config.optim.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.patches += self.config.data.batch_size
        return loss.detach()

    def _mean_loss(self, meter: _Meter) -> float:
        """The mean loss since the last row over all processes; raise if it is not finite."""
        total = distributed.all_reduce_sum(
            torch.stack([meter.loss_sum, meter.loss_sum.new_tensor(meter.steps)]), self.context)
        loss = float(total[0] / total[1])
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss} at step {self.step}; lower optim.lr or set "
                                     f"optim.grad_clip, then resume from the last checkpoint ({self.checkpoint})")
        return loss

    def run(self, *, progress: bool, stop_after: int | None) -> TrainResult:
        config, main = self.config, self.context.is_main
        model = distributed.wrap_model(self.model, self.context, device=self.device)
        model.train()
        if main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.output_dir / "config.yaml")
        log = RunLog(self.log_path, tuple(self.task.metric_names), resume_bytes=self.log_bytes,
                     tensorboard_dir=self.output_dir / "tensorboard" if config.tensorboard else None,
                     start_step=self.step, enabled=main)
        bar = None
        if progress and main:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        started = time.perf_counter()
        train_s = self.train_before
        metrics: dict[str, float] = {}
        meter = _Meter(torch.zeros((), dtype=torch.float64, device=self.device))
        stop = config.steps if stop_after is None else min(config.steps, max(stop_after, self.step))
        stream = BatchStream(self.task, seed=config.seed, rank=self.context.rank, start=self.step,
                             stop=stop, device=self.device, workers=config.data.workers)
        batches = iter(stream)
        try:
            tick = time.perf_counter()
            for step, batch in batches:
                assert step == self.step + 1, "batches arrive in step order"
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
                loss = self._train_step(model, batch)
                elapsed = time.perf_counter() - tick  # waiting for the batch included
                train_s += elapsed
                meter.add(loss, patches=config.data.batch_size, seconds=elapsed)
                final = step == config.steps
                validate = final or (config.validate_every > 0 and step % config.validate_every == 0)
                checkpoint = final or step % config.checkpoint_every == 0
                if validate or checkpoint or step % config.log_every == 0:
                    mean_loss = self._mean_loss(meter)
                    scores = self.task.validate(self.model) if validate and main else {}
                    metrics = scores or metrics
                    speed = meter.patches / meter.seconds if meter.seconds > 0 else float("nan")
                    log.write({"step": step, "loss": mean_loss, "lr": lr, "patches_per_s": round(speed, 2),
                               "wall_s": round(self.wall_before + time.perf_counter() - started, 3), **scores})
                    logger.info("step %d: loss %.6g, lr %.3g, %.1f patches/s%s", step, mean_loss, lr, speed,
                                "".join(f", {name} {value:.3f}" for name, value in scores.items()))
                    if bar is not None:
                        bar.set_postfix({"loss": f"{mean_loss:.4g}", "patches/s": f"{speed:.3g}",
                                         **({"psnr": f"{scores['psnr']:.2f}"} if "psnr" in scores else {})})
                    meter.reset()
                if checkpoint:
                    self.save(log=log, wall_s=self.wall_before + time.perf_counter() - started,
                              train_s=train_s)
                if bar is not None:
                    bar.update(1)
                tick = time.perf_counter()
        finally:
            batches.close()  # stops worker processes, if any
            if bar is not None:
                bar.close()
            log.close()
        completed = self.step >= config.steps
        if completed and not metrics and main:
            metrics = self.task.validate(self.model)  # a run resumed after its last step
        wall_s = self.wall_before + time.perf_counter() - started
        speed = self.patches / train_s if train_s > 0 else 0.0
        shipped = None
        if completed and config.ship is not None and main:
            shipped = ship_weights(self.model, config, recipe=self.recipe, metrics=metrics,
                                   training_data=self.task.training_data, training={
                                       "steps": self.step, "patches": self.patches,
                                       "wall_s": round(wall_s, 1), "patches_per_s": round(speed, 1),
                                       "processes": self.context.world_size, "device": str(self.device),
                                       "seed": config.seed})
        distributed.barrier(self.context)  # every process returns once the files are written
        return TrainResult(model=self.model.eval(), step=self.step, completed=completed, metrics=metrics,
                           output_dir=self.output_dir, log_path=self.log_path, checkpoint=self.checkpoint,
                           wall_s=wall_s, patches_per_s=speed, shipped=shipped)


def train(config: TrainConfig | PathLike, *, resume: bool = False, progress: bool = True,
          stop_after: int | None = None, recipe: PathLike | None = None) -> TrainResult:
    """Train the model a recipe describes; continue a killed run exactly with ``resume=True``.

    Parameters
    ----------
    config : TrainConfig or path
        The run, or the path of its recipe (YAML/JSON; then recorded as the
        ``recipe`` of exported weights).
    resume : bool
        Continue from the newest readable checkpoint in ``output_dir/checkpoints``
        (from step 0 if there is none). Without it, an ``output_dir`` holding
        checkpoints is refused rather than overwritten.
    progress : bool
        Show a tqdm progress bar (rank 0 only).
    stop_after : int, optional
        Stop once this step is done, as if the process were killed there (no
        final checkpoint unless one falls due, no export). For tests and budgets.
    recipe : path, optional
        The recipe file ``config`` came from, recorded in exported weights
        (automatic when ``config`` is a path).

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        An invalid recipe, or a resumption with a changed recipe.
    FileExistsError
        ``output_dir`` holds checkpoints and ``resume`` is false.
    FloatingPointError
        The loss became NaN or infinite.

    Notes
    -----
    Files in ``output_dir``: ``config.yaml`` (the run's recipe), ``log.csv``,
    ``checkpoints/step_NNNNNNNN.pt`` (the last ``keep_checkpoints``) and
    ``tensorboard/`` when TensorBoard is installed and ``tensorboard`` is on.
    Under ``torchrun`` every process calls :func:`train`; ``output_dir`` must be
    visible to all of them.

    Examples
    --------
    >>> result = train("recipes/drunet_small.yaml", progress=True)  # doctest: +SKIP
    >>> result.metrics["psnr"]  # doctest: +SKIP
    """
    recipe = os.fspath(recipe) if recipe is not None else None
    if not isinstance(config, TrainConfig):
        recipe = os.fspath(config)
        config = load_config(config)
    if stop_after is not None and stop_after < 0:
        raise ValueError(f"train: stop_after must be >= 0, got {stop_after}")
    context = distributed.environment_context()
    device = distributed.resolve_device(config.device, context)
    context = distributed.setup(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        with _threads(config.threads), torch.random.fork_rng(
                devices=[device.index] if device.type == "cuda" else [], device_type="cuda"):
            run = _Run(config, context, device, recipe)
            run.restore(resume)
            return run.run(progress=progress, stop_after=stop_after)
    finally:
        distributed.teardown(context)
