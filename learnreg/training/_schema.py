"""Typed config sections: dataclasses checked against their annotations.

A :class:`Section` subclass is a frozen dataclass whose ``__post_init__``
converts and checks every field against its type hint (``int``, ``float``,
``bool``, ``str``, ``Literal``, ``X | None``, ``tuple[X, ...]``, ``dict``,
nested sections), then calls :meth:`Section.check` for ranges.
:meth:`Section.from_dict` rejects unknown and missing keys with a message that
names the key, its section and the valid keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from typing import Any, ClassVar, Literal, Union

__all__ = ["ConfigError", "Section", "to_plain"]

_FRACTION = re.compile(r"^\s*([-+]?[0-9.eE+-]+)\s*/\s*([0-9.eE+-]+)\s*$")


class ConfigError(ValueError):
    """A training configuration is invalid; the message names the key and the fix."""


def _where(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _to_float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {_describe(value)}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        # "25/255" reads as a fraction, so that recipes can state noise levels as they are known
        match = _FRACTION.match(value)
        try:
            if match:
                return float(match.group(1)) / float(match.group(2))
            return float(value)
        except (ValueError, ZeroDivisionError):
            pass
    raise ConfigError(f"{where}: expected a number, got {_describe(value)}")


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """``value`` checked against ``annotation`` and converted (lists to tuples, ints to floats)."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        options = [argument for argument in arguments if argument is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(value, option, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where}: {_describe(value)} fits none of the allowed types")
    if origin is Literal:
        if value not in arguments:
            valid = ", ".join(repr(argument) for argument in arguments)
            raise ConfigError(f"{where}: must be one of {valid}; got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_describe(value)}")
        return value
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {_describe(value)}")
        return value
    if annotation is float:
        number = _to_float(value, where)
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_describe(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_describe(value)}")
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_convert(item, arguments[0], f"{where}[{i}]") for i, item in enumerate(value))
        if len(value) != len(arguments):
            raise ConfigError(f"{where}: expected a list of {len(arguments)} values, got {list(value)!r}")
        return tuple(_convert(item, kind, f"{where}[{i}]")
                     for i, (item, kind) in enumerate(zip(value, arguments)))
    if origin is dict or annotation is dict:
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise ConfigError(f"{where}: expected a mapping with string keys, got {_describe(value)}")
        return dict(value)
    if isinstance(annotation, type) and issubclass(annotation, Section):
        if isinstance(value, annotation):
            return value
        if isinstance(value, dict):
            return annotation.from_dict(value)
        raise ConfigError(f"{where}: expected a mapping, got {_describe(value)}")
    raise TypeError(f"config field {where}: unsupported annotation {annotation!r}")  # a bug, not user error


def to_plain(value: Any) -> Any:
    """``value`` with sections turned into dicts and tuples into lists (YAML/JSON-safe)."""
    if isinstance(value, Section):
        return {field.name: to_plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    return value


class Section:
    """Base of the config dataclasses: typed fields, range checks, dict round trip.

    Subclasses are ``@dataclass(frozen=True)`` and set :attr:`section`, the
    dotted name used in error messages (``"optim"``, ``"task.options"``).
    """

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = _convert(getattr(self, field.name), hints[field.name],
                             _where(self.section, field.name))
            object.__setattr__(self, field.name, value)  # frozen: set the converted value once
        self.check()

    def check(self) -> None:
        """Range and consistency checks; raise :class:`ConfigError`."""

    def fail(self, name: str, message: str) -> typing.NoReturn:
        """Raise :class:`ConfigError` for field ``name`` of this section."""
        raise ConfigError(f"{_where(self.section, name)}: {message}")

    @classmethod
    def keys(cls) -> list[str]:
        """The valid keys of this section, in order."""
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from a mapping; unknown or missing keys raise :class:`ConfigError`."""
        place = f"in {cls.section}" if cls.section else "at the top level"
        if not isinstance(data, dict):
            raise ConfigError(f"expected a mapping {place}, got {_describe(data)}")
        valid = cls.keys()
        for key in data:
            if key not in valid:
                text = str(key)
                close = difflib.get_close_matches(text, valid, n=1) or \
                    [name for name in valid if text.startswith(name) or name.startswith(text)][:1]
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown key {key!r} {place}; valid keys: {', '.join(valid)}{hint}")
        missing = [field.name for field in dataclasses.fields(cls)
                   if field.name not in data and field.default is dataclasses.MISSING
                   and field.default_factory is dataclasses.MISSING]
        if missing:
            raise ConfigError(f"missing key {missing[0]!r} {place}; required keys: {', '.join(missing)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain dicts, lists and scalars (YAML/JSON-safe); :meth:`from_dict` inverts it."""
        return to_plain(self)
