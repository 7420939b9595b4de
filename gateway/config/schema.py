"""The data-driven reader: one TOML table into a dataclass, from the dataclass's own fields.

A field's annotation says how its key is read (``bool``, ``int``, ``float``, ``str``, any of them
``| None``, ``tuple[str, ...]``, ``Mapping[str, str]``, ``Mapping[str, Any]`` for a free table, or
a nested dataclass for a nested table); its default is the key's default, and a field without one
is required. ``field(metadata=...)`` adds what an annotation cannot say: a ``minimum`` (see
``at_least``), or ``env``: the key naming the environment variable that holds a secret (see
``from_env``). Mistakes are ``ConfigError``s named by their path, like every getter of ``Table``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from gateway.config.reader import REQUIRED, Table, env_secret

T = TypeVar("T")

_NO_ENV: Mapping[str, str] = {}


def at_least(minimum: float, default: T) -> T:
    """A field whose key, when given, must be at least ``minimum``."""
    result: T = dataclasses.field(default=default, metadata={"minimum": minimum})
    return result


def from_env(key: str) -> Any:
    """A secret field, read from the environment variable that the table's ``key`` names."""
    return dataclasses.field(default=None, metadata={"env": key})


def read_section(cls: type[T], table: Table, env: Mapping[str, str] = _NO_ENV) -> T:
    """The dataclass ``cls`` read from ``table``; a key it has no field for is an error."""
    settings = read_fields(cls, table, env)
    table.done()
    return settings


def read_fields(cls: type[T], table: Table, env: Mapping[str, str] = _NO_ENV) -> T:
    """``read_section`` that leaves other keys to the caller (several schemas may share a table;
    the caller ends with ``table.done()``)."""
    values = {spec.name: _read(table, spec, hint, env) for spec, hint in _fields_and_hints(cls)}
    return cls(**values)


def given_fields(settings: Any, table: Table) -> dict[str, Any]:
    """The values of the fields that ``table`` gave a key for, as read (numbers as floats, lists
    as tuples): what an operator set, without the defaults."""
    names = (spec.name for spec in dataclasses.fields(settings))
    return {name: getattr(settings, name) for name in names if name in table.data}


_Fields = tuple[tuple[dataclasses.Field[Any], Any], ...]
_FIELDS: dict[type[Any], _Fields] = {}


def _fields_and_hints(cls: type[Any]) -> _Fields:
    """Each field with its resolved annotation: annotations are strings (postponed evaluation),
    so they are resolved once per class."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = tuple((spec, hints[spec.name]) for spec in dataclasses.fields(cls))
    return found


def _default(spec: dataclasses.Field[Any]) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return REQUIRED


def _read(table: Table, spec: dataclasses.Field[Any], hint: Any, env: Mapping[str, str]) -> Any:
    if "env" in spec.metadata:
        return env_secret(table, spec.metadata["env"], env)
    name, default, minimum = spec.name, _default(spec), spec.metadata.get("minimum")
    hint = _without_none(hint)
    if hint is bool:
        return table.flag(name, default)
    if hint is int:
        return table.integer(name, default, minimum)
    if hint is float:
        return table.number(name, default, minimum)
    if hint is str:
        return table.text(name, default)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and args == (str, ...):
        return table.strings(name, default)
    if origin in (Mapping, dict) and args[0] is str:
        if name not in table.data:
            table.raw(name)  # seen: absent keys are not unknown ones
            return default
        return _mapping(table.table(name), args[1])
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return read_section(hint, table.table(name), env)
    raise TypeError(f"{table.at(name)}: no reader for the annotation {hint!r}")


def _without_none(hint: Any) -> Any:
    """``X`` for ``X | None`` (the default None stands for "not given")."""
    if isinstance(hint, types.UnionType):
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return hint


def _mapping(table: Table, value_type: Any) -> dict[str, Any]:
    if value_type is str:
        values = {name: table.text(name) for name in table.data}
        table.done()
        return values
    return dict(table.items())  # a free table: its values are the adapter's to interpret
