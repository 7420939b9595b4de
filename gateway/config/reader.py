"""A small strict reader for configuration tables: typed getters that know their path.

Every getter names the exact place of a mistake (``models.claude.provider: ...``), and ``done``
rejects keys nobody asked for, so a typo fails at start instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
# The default of a key that must be given.
REQUIRED: Any = object()


class ConfigError(ValueError):
    """A configuration mistake, with the dotted path of where it is."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def child_path(path: str, name: str) -> str:
    if not path:
        return name
    # Quote names that would otherwise read as several path parts.
    part = name if name.replace("-", "").replace("_", "").isalnum() else f'"{name}"'
    return f"{path}.{part}"


class Table:
    """One TOML table being read; remembers which keys were consumed."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected a table, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.path = path
        self._seen: set[str] = set()

    def at(self, name: str) -> str:
        return child_path(self.path, name)

    def _get(self, name: str, kind: type[T] | tuple[type, ...], default: Any, what: str) -> Any:
        self._seen.add(name)
        if name not in self.data:
            if default is REQUIRED:
                raise ConfigError(self.at(name), "is required")
            return default
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is a subclass of int in Python: `true` must not pass as an integer.
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(self.at(name), f"expected {what}, got a boolean")
        if not isinstance(value, kind):
            raise ConfigError(self.at(name), f"expected {what}, got {type(value).__name__}")
        return value

    def text(self, name: str, default: Any = REQUIRED) -> Any:
        value = self._get(name, str, default, "a string")
        if isinstance(value, str) and not value:
            raise ConfigError(self.at(name), "must not be empty")
        return value

    def flag(self, name: str, default: Any = REQUIRED) -> Any:
        return self._get(name, bool, default, "true or false")

    def integer(self, name: str, default: Any = REQUIRED, minimum: int | None = None) -> Any:
        value = self._get(name, int, default, "an integer")
        if minimum is not None and isinstance(value, int) and value < minimum:
            raise ConfigError(self.at(name), f"must be at least {minimum}")
        return value

    def number(self, name: str, default: Any = REQUIRED, minimum: float | None = None) -> Any:
        value = self._get(name, (int, float), default, "a number")
        if minimum is not None and isinstance(value, int | float) and value < minimum:
            raise ConfigError(self.at(name), f"must be at least {minimum}")
        return float(value) if isinstance(value, int | float) else value

    def strings(self, name: str, default: Any = REQUIRED) -> Any:
        value = self._get(name, list, default, "a list of strings")
        if isinstance(value, list):
            for index, item in enumerate(value):
                if not isinstance(item, str) or not item:
                    raise ConfigError(f"{self.at(name)}[{index}]", "expected a non-empty string")
            return tuple(value)
        return value

    def table(self, name: str, required: bool = False) -> Table:
        self._seen.add(name)
        if name not in self.data:
            if required:
                raise ConfigError(self.at(name), "is required")
            return Table({}, self.at(name))
        return Table(self.data[name], self.at(name))

    def raw(self, name: str, default: Any = None) -> Any:
        self._seen.add(name)
        return self.data.get(name, default)

    def items(self) -> list[tuple[str, Any]]:
        self._seen.update(self.data)
        return list(self.data.items())

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            raise ConfigError(self.at(unknown[0]), "unknown key")


def env_secret(table: Table, name: str, env: Mapping[str, str]) -> str | None:
    """The value of the environment variable that ``table.name`` names (None if not given)."""
    variable = table.text(name, None)
    if variable is None:
        return None
    value = env.get(variable)
    if not value:
        raise ConfigError(table.at(name), f"environment variable {variable} is not set")
    return value
