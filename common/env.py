"""Typed values from the environment, validated with every problem collected (each naming its variable,
never its value), so that a bad configuration is reported at once at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from common.secret_registry import register_secret
from common.settings import setting

__all__ = ["ConfigError", "EnvReader"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class ConfigError(Exception):
    """Raised with one line per bad variable; the message never contains a value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


class EnvReader:
    """Reads typed values and remembers what was wrong instead of stopping at the first problem."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if environ is None else environ
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self._env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def string(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None:
            if required and default is None:
                self.problems.append(f"{name} is required")
            return default
        return value

    def secret(self, name: str) -> str | None:
        value = self._env.get(name)
        if not value:
            return None
        register_secret(value)
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value, 10)
        except ValueError:
            number = None
        if number is None or not minimum <= number <= maximum:
            self.problems.append(f"{name} must be an integer between {minimum} and {maximum}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self._env.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False if lowered else default
        self.problems.append(f"{name} must be true or false")
        return default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in choices:
            self.problems.append(f"{name} must be one of " + ", ".join(choices))
            return default
        return value.lower()

    def url(self, name: str, *, schemes: tuple[str, ...], required: bool = False) -> str | None:
        value = self.string(name, required=required)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            self.problems.append(
                f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
            return None
        return value

    # ---- by the registry (common.settings): its default and bounds, for this reader

    def int_setting(self, name: str, reader: str | None = None) -> int:
        entry = setting(name)
        default = entry.default_for(reader)
        assert isinstance(default, int), name
        low, high = entry.bounds()
        return self.integer(name, default, minimum=low, maximum=high)

    def bool_setting(self, name: str) -> bool:
        default = setting(name).default
        assert isinstance(default, bool), name
        return self.boolean(name, default)

    def str_setting(self, name: str, reader: str | None = None) -> str:
        default = setting(name).default_for(reader)
        assert isinstance(default, str), name
        return self.string(name, default) or default

    def choice_setting(self, name: str) -> str:
        entry = setting(name)
        assert isinstance(entry.default, str), name
        return self.choice(name, entry.default, entry.choices)

    def check(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)
