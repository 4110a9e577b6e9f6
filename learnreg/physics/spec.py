"""The :class:`Degradation` record (operator + noise + shape + seed) and its JSON file.

The operator and noise spec strings are parsed by :mod:`learnreg.physics.parse`
(syntax there); this module holds the record built from them and its file format.

JSON format (version 1)
-----------------------
:meth:`Degradation.save` writes ``NAME.json`` and, beside it, one ``NAME.ARRAY.npy``
per array (float64 ``kernel`` for blur and SR, bool ``mask`` for inpainting, always,
so that random masks and generated kernels are rebuilt bit for bit)::

    {
      "format": "learnreg.degradation",
      "version": 1,
      "operator": {
        "spec": "sr:4:bicubic",          # the operator spec string, as given
        "kind": "sr",                    # identity | blur | sr | inpaint
        "in_shape": [3, 256, 256],       # (C, H, W) of x
        "out_shape": [3, 64, 64],        # (C, h, w) of y
        "boundary": "circular",          # blur and sr
        "kernel": "kernel",              # blur and sr: name of the array entry
        "kernel_origin": [8, 8],         # blur and sr: (kh // 2, kw // 2)
        "factor": 4, "offset": [1, 1],   # sr only
        "mask": "mask"                   # inpaint only: name of the array entry
      },
      "noise": {"spec": "gaussian:0.01", "kind": "gaussian", "sigma": 0.01, "peak": null,
                "sigma_equivalent": 0.01},
      "seed": 0,
      "arrays": {"kernel": {"file": "y.kernel.npy", "sha256": "<hex digest of the file>",
                            "shape": [16, 16], "dtype": "float64"}}
    }

Semantics: ``y = noise(A x)`` with, for blur, ``(A x)[i, j] = sum_ab k[a, b]
x[i - a + kh//2, j - b + kw//2]`` (indices modulo ``H``, ``W``, every channel); for SR,
the same then ``y[i, j] = (A x)[offset[0] + factor i, offset[1] + factor j]``; for
inpainting ``y = mask * x`` and the noise is masked too, so missing pixels are
exactly 0. Random masks come from ``torch.Generator().manual_seed(seed)``
(:func:`~learnreg.physics.simple.random_mask`); the noise generator is the caller's.
:meth:`Degradation.load` checks each array's sha256; the saved arrays, not the
spec string (whose file paths are not read again), define the operator. A hand-written file may give
only ``operator`` (a spec string or an object with ``spec`` and ``in_shape``), ``shape``
when ``operator`` is a string, and optionally ``noise`` (string or object) and ``seed``;
the arrays are then rebuilt from the spec.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from learnreg.physics.blur import Blur
from learnreg.physics.kernels import check_kernel
from learnreg.physics.noise import Noise
from learnreg.physics.operator import LinearOperator, _as_shape
from learnreg.physics.parse import OperatorSpec, parse_noise, parse_operator
from learnreg.physics.simple import Identity, Inpaint, _as_mask
from learnreg.physics.superres import SuperResolution, default_offset

__all__ = ["Degradation", "FORMAT", "VERSION", "OperatorSpec", "parse_operator", "parse_noise"]

FORMAT = "learnreg.degradation"
VERSION = 1


@dataclass(frozen=True, eq=False)
class Degradation:
    """A complete, reproducible degradation: operator, noise, image shape and seed.

    Parameters
    ----------
    operator : str
        Operator spec string, e.g. ``"blur:gaussian:2.0"``.
    noise : str
        Noise spec string, e.g. ``"gaussian:0.01"``.
    shape : tuple of int
        Per-sample shape ``(C, H, W)`` of the clean image.
    seed : int
        Seed of random masks.
    offset : (int, int), optional
        SR sampling offset; default that of :class:`~learnreg.physics.superres.SuperResolution`.
    kernel, mask : ndarray, optional
        The arrays; built from the spec when omitted (:meth:`load` passes the saved ones).
        The record keeps private copies (float64 kernel, bool mask); treat them as read-only.

    Notes
    -----
    Construction builds the operator once, so a wrong spec, a kernel larger than the
    image or an SR factor that does not divide the size fail here. The JSON format is
    described in the module docstring.

    Examples
    --------
    >>> import torch
    >>> d = Degradation.from_strings("sr:2:bicubic", "gaussian:0.01", shape=(1, 8, 8), seed=0)
    >>> d.apply(torch.zeros(1, 1, 8, 8), torch.Generator().manual_seed(0)).shape
    torch.Size([1, 1, 4, 4])
    """

    operator: str
    noise: str
    shape: tuple[int, int, int]
    seed: int = 0
    offset: tuple[int, int] | None = None
    kernel: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("shape", _as_shape(tuple(self.shape), "shape"))
        put("seed", int(self.seed))
        spec = parse_operator(self.operator)
        put("_spec", spec)
        put("_noise", parse_noise(self.noise))
        if spec.kind in ("blur", "sr"):
            kernel = spec.build_kernel() if self.kernel is None else check_kernel(self.kernel)
            put("kernel", _frozen(kernel))
        elif self.kernel is not None:
            raise ValueError(f"{self.operator!r} takes no kernel")
        if spec.kind == "inpaint":
            mask = spec.build_mask(self.shape[1:], seed=self.seed) if self.mask is None else self.mask
            put("mask", _frozen(_as_mask(mask, self.shape[1:]).numpy()))
        elif self.mask is not None:
            raise ValueError(f"{self.operator!r} takes no mask")
        if spec.kind == "sr":
            offset = default_offset(self.kernel.shape, spec.factor) if self.offset is None else self.offset
            put("offset", tuple(int(o) for o in offset))
        elif self.offset is not None:
            raise ValueError(f"offset applies to SR operators only, not {self.operator!r}")
        put("_operator", self._build())

    @classmethod
    def from_strings(cls, operator: str, noise: str = "none", *, shape: tuple[int, ...],
                     seed: int = 0) -> "Degradation":
        """Build from CLI spec strings for clean images of per-sample ``shape = (C, H, W)``."""
        return cls(operator, noise, tuple(shape), seed)

    def _build(self) -> LinearOperator:
        spec: OperatorSpec = self._spec  # type: ignore[attr-defined]
        if spec.kind == "identity":
            return Identity(self.shape)
        if spec.kind == "blur":
            return Blur(self.kernel, self.shape)
        if spec.kind == "sr":
            return SuperResolution(self.kernel, spec.factor, self.shape, offset=self.offset)
        return Inpaint(self.mask, self.shape)

    def build_operator(self) -> LinearOperator:
        """The forward operator ``A`` (one instance per record, so its FFT caches are shared)."""
        return self._operator  # type: ignore[attr-defined]

    def build_noise(self) -> Noise:
        """The noise model."""
        return parse_noise(self.noise)

    @property
    def sigma(self) -> float:
        """Gaussian-equivalent noise std on the [0, 1] scale (``Noise.sigma_equivalent``)."""
        return self._noise.sigma_equivalent  # type: ignore[attr-defined]

    def describe(self) -> str:
        """One line for humans, e.g. ``"blur:gaussian:2.0 on 1x64x64 -> 1x64x64, noise gaussian:0.01, seed 0"``."""
        out = self._operator.out_shape  # type: ignore[attr-defined]
        return (f"{self.operator} on {'x'.join(map(str, self.shape))} -> {'x'.join(map(str, out))}, "
                f"noise {self._noise.spec}, seed {self.seed}")  # type: ignore[attr-defined]

    def apply(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """``y = noise(A x)`` (masked again for inpainting); ``x``: (B, C, H, W) -> (B, *out_shape)."""
        if isinstance(x, Tensor) and not bool(torch.isfinite(x).all()):
            raise ValueError("the clean image contains NaN or Inf; clean the input first")
        operator = self.build_operator()
        y = self._noise(operator(x), generator)  # type: ignore[attr-defined]
        return operator(y) if isinstance(operator, Inpaint) else y

    # -- files --------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {name: value for name, value in (("kernel", self.kernel), ("mask", self.mask)) if value is not None}

    def to_dict(self, arrays: dict[str, dict] | None = None) -> dict:
        """The JSON document (module notes); ``arrays`` holds the file entries written by :meth:`save`."""
        spec: OperatorSpec = self._spec  # type: ignore[attr-defined]
        operator = self.build_operator()
        entry: dict = {"spec": self.operator, "kind": spec.kind, "in_shape": list(operator.in_shape),
                       "out_shape": list(operator.out_shape)}
        if self.kernel is not None:
            entry.update(boundary="circular", kernel="kernel", kernel_origin=[s // 2 for s in self.kernel.shape])
        if spec.kind == "sr":
            entry.update(factor=spec.factor, offset=list(self.offset))
        if self.mask is not None:
            entry["mask"] = "mask"
        noise: Noise = self._noise  # type: ignore[attr-defined]
        return {
            "format": FORMAT,
            "version": VERSION,
            "operator": entry,
            "noise": {"spec": noise.spec, "kind": noise.spec.split(":")[0], "sigma": getattr(noise, "sigma", None),
                      "peak": getattr(noise, "peak", None), "sigma_equivalent": noise.sigma_equivalent},
            "seed": self.seed,
            "arrays": dict(arrays or {}),
        }

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the JSON spec and its ``.npy`` arrays beside it, atomically.

        Raises
        ------
        FileExistsError
            A target exists and ``force`` is false.
        ValueError
            A target is the file this spec's kernel or mask was read from.
        """
        path = Path(path)
        targets = {name: path.with_name(f"{path.stem}.{name}.npy") for name in self._arrays()}
        source = self._spec.path  # type: ignore[attr-defined]
        for target in (path, *targets.values()):
            if source and target.resolve() == Path(source).resolve():
                raise ValueError(f"refusing to overwrite {target}, an input of this spec; choose another name")
            if target.exists() and not force:
                raise FileExistsError(f"{target} exists; pass force=True (--force) to replace it")
        entries = {}
        for name, target in targets.items():
            buffer = io.BytesIO()
            np.save(buffer, self._arrays()[name], allow_pickle=False)
            data = buffer.getvalue()
            _atomic_write(target, data)
            value = self._arrays()[name]
            entries[name] = {"file": target.name, "sha256": hashlib.sha256(data).hexdigest(),
                             "shape": list(value.shape), "dtype": str(value.dtype)}
        _atomic_write(path, (json.dumps(self.to_dict(entries), indent=2) + "\n").encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Degradation":
        """Read a spec written by :meth:`save` (or by hand), verifying each array's sha256.

        Raises
        ------
        FileNotFoundError
            The spec or one of its arrays is missing.
        ValueError
            Not a learnreg degradation spec, a newer version, missing fields, or an array
            whose sha256 differs from the recorded one.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"spec file {path} does not exist")
        try:
            document = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a JSON degradation spec: {error}") from None
        if not isinstance(document, dict) or document.get("format", FORMAT) != FORMAT:
            raise ValueError(f"{path} is not a learnreg degradation spec (expected \"format\": \"{FORMAT}\")")
        if int(document.get("version", VERSION)) > VERSION:
            raise ValueError(f"{path} has format version {document['version']}; this learnreg reads up to "
                             f"{VERSION}, upgrade learnreg")
        try:
            operator, noise = document["operator"], document.get("noise", "none")
            shape = operator["in_shape"] if isinstance(operator, dict) else document["shape"]
            operator = operator["spec"] if isinstance(operator, dict) else operator
            offset = document["operator"].get("offset") if isinstance(document["operator"], dict) else None
            noise = noise["spec"] if isinstance(noise, dict) else noise
            seed = int(document.get("seed", 0))
            arrays = {name: _read_array(path, name, entry) for name, entry in document.get("arrays", {}).items()}
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: missing or malformed field {error}; "
                             "see learnreg.physics.spec for the format") from None
        return cls(operator, noise, tuple(shape), seed, offset=None if offset is None else tuple(offset),
                   kernel=arrays.get("kernel"), mask=arrays.get("mask"))


def _read_array(spec_path: Path, name: str, entry: dict) -> np.ndarray:
    file = spec_path.parent / entry["file"]
    if not file.is_file():
        raise FileNotFoundError(f"{file}, the {name} of {spec_path}, is missing; keep the .npy files beside the JSON")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{file} does not match the sha256 recorded in {spec_path}: it was changed after the spec "
                         "was written; restore it or degrade again")
    return np.load(io.BytesIO(data), allow_pickle=False)


def _frozen(array: np.ndarray) -> np.ndarray:
    # a private copy; left writable because torch.from_numpy warns on read-only arrays
    return np.array(array, copy=True)


def _atomic_write(target: Path, data: bytes) -> None:
    """Write to a temporary file in the target's directory, then ``os.replace`` it into place."""
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
