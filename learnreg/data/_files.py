"""Atomic file writes and the overwrite policy (re-exported by :mod:`learnreg.data.io`).

Outputs are never half-written and inputs never overwritten:

* :func:`atomic_path` / :func:`atomic_write_bytes` write to a temporary file in
  the target's directory and :func:`os.replace` it onto the target;
* :func:`check_output_path` refuses an existing target unless forced, and a
  protected one (a command's input) always.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterable, Iterator

PathLike = str | os.PathLike


class OverwriteError(FileExistsError):
    """Writing would overwrite a file that must be kept."""


def _create_temporary(directory: Path, target: Path) -> Path:
    # os.open with mode 0o666 honours the umask (tempfile.mkstemp would give
    # 0o600, and os.replace would pass that mode on to the output)
    for _ in range(100):
        temporary = directory / f".{target.name}.{secrets.token_hex(4)}.tmp{target.suffix}"
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return temporary
    raise FileExistsError(f"cannot create a temporary file in {directory}")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    Write the whole output to the yielded path. When the block exits normally
    the file is flushed to disk and :func:`os.replace` moves it onto ``path``
    (atomic on POSIX and Windows); when the block raises, the temporary file is
    removed and ``path`` is left as it was. The temporary name keeps the
    suffix of ``path`` so that format-sniffing writers still work.

    Examples
    --------
    >>> import json
    >>> with atomic_path("report.json") as temporary:  # doctest: +SKIP
    ...     temporary.write_text(json.dumps({"psnr": 31.2}))
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(
            f"cannot write {target}: directory {directory} does not exist; create it first"
        )
    temporary = _create_temporary(directory, target)
    try:
        yield temporary
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: PathLike, text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding=encoding)


def _same_file(first: Path, second: Path) -> bool:
    if first.resolve() == second.resolve():
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def check_output_path(path: PathLike, *, force: bool = False, protect: Iterable[PathLike] = ()) -> Path:
    """Refuse outputs that would destroy data; return ``path`` as a Path.

    Raises
    ------
    OverwriteError
        If ``path`` is one of ``protect`` (always, even with ``force``), or
        exists and ``force`` is false.
    """
    target = Path(path)
    if isinstance(protect, (str, os.PathLike)):
        protect = (protect,)  # one path, not an iterable of characters
    for kept in protect:
        if _same_file(target, Path(kept)):
            raise OverwriteError(f"refusing to overwrite the input {kept}; choose another --out")
    if target.is_dir():
        raise OverwriteError(f"{target} is a directory; give a file name with an extension")
    if target.exists() and not force:
        raise OverwriteError(
            f"{target} already exists; pass force=True (--force) to overwrite it, "
            "or choose another --out"
        )
    return target
