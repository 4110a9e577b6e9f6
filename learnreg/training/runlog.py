"""The log of a training run: ``log.csv``, and TensorBoard when it is installed.

``log.csv`` has one row per logged step with the columns ``step, loss, lr,
patches_per_s, wall_s`` followed by the task's validation metrics (empty in
rows without validation). Its size in bytes is stored in every checkpoint;
on resume the file is cut back to that size, so the rows of the steps that are
run again are not duplicated and a resumed log matches an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Union

logger = logging.getLogger(__name__)

__all__ = ["RunLog", "LOG_COLUMNS", "read_log"]

PathLike = Union[str, "os.PathLike[str]"]
LOG_COLUMNS = ("step", "loss", "lr", "patches_per_s", "wall_s")


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # exact, so that logs of resumed runs compare equal
    return str(value)


class RunLog:
    """Append rows to ``log.csv`` (and TensorBoard); a no-op when ``enabled`` is false.

    Parameters
    ----------
    path : str or PathLike
        The CSV file.
    metric_names : sequence of str
        Validation metrics, the columns after :data:`LOG_COLUMNS`.
    resume_bytes : int, optional
        Continue an existing log cut back to this many bytes (from a
        checkpoint); a fresh log is started when ``None``.
    tensorboard_dir : str or PathLike, optional
        Also write TensorBoard scalars there, if ``torch.utils.tensorboard`` imports.
    start_step : int
        The last step already done; TensorBoard events after it are purged on resume.
    enabled : bool
        False on the processes that must not write (ranks other than 0).
    """

    def __init__(self, path: PathLike, metric_names: tuple[str, ...], *,
                 resume_bytes: int | None = None, tensorboard_dir: PathLike | None = None,
                 start_step: int = 0, enabled: bool = True):
        self.path = Path(path)
        self.columns = (*LOG_COLUMNS, *metric_names)
        self.enabled = enabled
        self._stream = None
        self._tensorboard = None
        if not enabled:
            return
        header = ",".join(self.columns) + "\n"
        if resume_bytes is not None and self.path.is_file():
            with open(self.path, "rb") as stream:
                first = stream.readline().decode("utf-8", errors="replace")
            if first != header:
                raise ValueError(f"{self.path} has columns {first.strip()!r}, expected "
                                 f"{header.strip()!r}; it belongs to another run")
            size = self.path.stat().st_size
            if size < resume_bytes:
                logger.warning("%s is shorter (%d bytes) than the checkpoint recorded (%d); "
                               "some rows are lost", self.path, size, resume_bytes)
            self._stream = open(self.path, "r+b")
            self._stream.seek(min(size, resume_bytes))
            self._stream.truncate()
        else:
            self._stream = open(self.path, "wb")
            self._stream.write(header.encode("utf-8"))
            self._stream.flush()
        if tensorboard_dir is not None:
            self._tensorboard = _summary_writer(tensorboard_dir, purge_step=start_step + 1)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (missing columns stay empty) and flush it."""
        if not self.enabled:
            return
        unknown = sorted(set(row) - set(self.columns))
        if unknown:
            raise ValueError(f"log row has columns {unknown} that are not in the log ({list(self.columns)}); "
                             "a task's validate() may only return the keys of its metric_names")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([_format(row.get(name)) for name in self.columns])
        self._stream.write(buffer.getvalue().encode("utf-8"))
        self._stream.flush()
        if self._tensorboard is not None:
            step = int(row["step"])
            for name, value in row.items():
                if name != "step" and isinstance(value, (int, float)):
                    group = "train" if name in LOG_COLUMNS else "validation"
                    self._tensorboard.add_scalar(f"{group}/{name}", value, step)
            self._tensorboard.flush()

    def position(self) -> int:
        """Bytes written so far (stored in checkpoints); 0 when disabled."""
        return self._stream.tell() if self._stream is not None else 0

    def close(self) -> None:
        """Close the files (idempotent)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _summary_writer(directory: PathLike, *, purge_step: int):
    """A TensorBoard ``SummaryWriter``, or ``None`` when TensorBoard is not installed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tensorboard's own imports may warn about deprecations
            from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.debug("TensorBoard not installed; logging to CSV only")
        return None
    return SummaryWriter(log_dir=str(directory), purge_step=purge_step)


def read_log(path: PathLike) -> list[dict[str, str]]:
    """The rows of a ``log.csv`` as dicts of strings (empty cells are ``''``)."""
    with open(path, "r", encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))
