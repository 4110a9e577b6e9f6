"""Dict round trips shared by the small configuration dataclasses (networks, generators, samplers)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any


class DictConfig:
    """Mixin for dataclasses: ``to_dict`` and a strict ``from_dict`` whose unknown keys raise."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from :meth:`to_dict` output; unknown keys raise, listing the valid ones."""
        known = {field.name for field in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {unknown}; valid keys: {sorted(known)}")
        return cls(**data)
