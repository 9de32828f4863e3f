"""Typed ``{value, unit, source}`` entries of the parameter files, shared by the config loaders.

:mod:`exo.twin.config` (``config/twin.yaml``) and :mod:`exo.envs.config`
(``config/env.yaml``) read every physical number as::

    name: {value: 0.001, unit: s, source: "facts: MuJoCo timestep"}

through :class:`EntryReader`, which checks the value's type and length, the unit
and that a source is given; the dataclasses validate ranges with :func:`check`
and :func:`check_finite`; :func:`apply_overrides` makes validated copies. Every
error is a :class:`exo.params.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from exo.params import ConfigError, load_node_parameters
from exo.paths import config_file

# ----------------------------------------------------------------------------- validation


def check(cond: bool, what: str) -> None:
    """Raise :class:`ConfigError` ``what`` unless ``cond``."""
    if not cond:
        raise ConfigError(what)


def check_finite(name: str, value: float, lo: float | None = None, hi: float | None = None, strict_lo: bool = False) -> None:
    """``value`` is a finite number (not a bool) within ``[lo, hi]`` (``(lo, hi]`` with ``strict_lo``)."""
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), f"{name} must be a finite number, got {value!r}")
    if lo is not None:
        ok = value > lo if strict_lo else value >= lo
        check(ok, f"{name} must be {'>' if strict_lo else '>='} {lo}, got {value}")
    if hi is not None:
        check(value <= hi, f"{name} must be <= {hi}, got {value}")


# ----------------------------------------------------------------------------- overrides


def apply_overrides(cfg: Any, overrides: Mapping[str, Any], sections: Sequence[str]) -> Any:
    """A validated copy of the dataclass ``cfg`` with ``field=value``, ``section__field=value`` or
    ``section=Section(...)`` replaced; a bare field name must belong to ``cfg`` or to exactly one section."""
    top: dict[str, Any] = {}
    per_section: dict[str, dict[str, Any]] = {s: {} for s in sections}
    own = {f.name for f in fields(cfg)}
    for key, value in overrides.items():
        if "__" in key:
            section, name = key.split("__", 1)
            if section not in per_section:
                raise ConfigError(f"override {key!r}: no section {section!r} (sections: {list(sections)})")
            per_section[section][name] = value
            continue
        if key in own:
            top[key] = value
            continue
        owners = [s for s in sections if key in {f.name for f in fields(getattr(cfg, s))}]
        if len(owners) != 1:
            hint = f"ambiguous, use one of {[f'{s}__{key}' for s in owners]}" if owners else "unknown field"
            raise ConfigError(f"override {key!r}: {hint}")
        per_section[owners[0]][key] = value
    out = replace(cfg, **top) if top else cfg
    for section, values in per_section.items():
        if values:
            current = getattr(out, section)
            valid = {f.name for f in fields(current)}
            unknown = sorted(set(values) - valid)
            if unknown:
                raise ConfigError(f"override: section {section!r} has no field(s) {unknown}")
            out = replace(out, **{section: replace(current, **values)})
    return out


# ----------------------------------------------------------------------------- YAML parsing


class EntryReader:
    """Typed access to one nested mapping of a parameter file, with errors naming file and key."""

    def __init__(self, data: Any, path: str, where: str = "") -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: {where or 'top level'} must be a mapping, got {type(data).__name__}")
        self.data, self.path, self.where = data, path, where

    def _key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def _get(self, name: str) -> Any:
        if name not in self.data:
            raise ConfigError(f"{self.path}: missing key {self._key(name)!r}")
        return self.data[name]

    def section(self, name: str) -> EntryReader:
        return EntryReader(self._get(name), self.path, self._key(name))

    def child_keys(self) -> list[str]:
        return list(self.data)

    def _entry(self, name: str, unit: str) -> Any:
        entry = self._get(name)
        key = self._key(name)
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise ConfigError(f"{self.path}: {key} must be {{value: ..., unit: {unit!r}, source: ...}}, got {entry!r}")
        if str(entry.get("unit")) != unit:
            raise ConfigError(f"{self.path}: {key} has unit {entry.get('unit')!r}, expected {unit!r}")
        source = entry.get("source")
        if not isinstance(source, str) or not source.strip():
            raise ConfigError(f"{self.path}: {key} needs a 'source' (paper, facts, myoleg, 'chosen: why' or 'fitted: how')")
        return entry["value"]

    def number(self, name: str, unit: str) -> float:
        value = self._entry(name, unit)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{self.path}: {self._key(name)}.value must be a finite number, got {value!r}")
        return float(value)

    def integer(self, name: str, unit: str) -> int:
        value = self._entry(name, unit)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.path}: {self._key(name)}.value must be an integer, got {value!r}")
        return value

    def vector(self, name: str, unit: str, length: int) -> tuple[float, ...]:
        value = self._entry(name, unit)
        key = self._key(name)
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != length:
            raise ConfigError(f"{self.path}: {key}.value must be a list of {length} numbers, got {value!r}")
        out = []
        for i, x in enumerate(value):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise ConfigError(f"{self.path}: {key}.value[{i}] must be a finite number, got {x!r}")
            out.append(float(x))
        return tuple(out)

    def choice(self, name: str, options: Sequence[str]) -> str:
        value = self._get(name)
        if value not in options:
            raise ConfigError(f"{self.path}: {self._key(name)} must be one of {list(options)}, got {value!r}")
        return str(value)

    def flag(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.path}: {self._key(name)} must be true or false, got {value!r}")
        return value

    def names(self, name: str) -> tuple[str, ...]:
        value = self._get(name)
        if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(x, str) and x for x in value):
            raise ConfigError(f"{self.path}: {self._key(name)} must be a list of names, got {value!r}")
        return tuple(value)


def validated(path: str, build: Any) -> Any:
    """Run a dataclass constructor, prefixing validation errors with the file name."""
    try:
        return build()
    except ConfigError as exc:
        if str(exc).startswith(path):
            raise
        raise ConfigError(f"{path}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def find_config(name: str) -> Path:
    """``config/<name>`` via :mod:`exo.paths`, else the repository's top-level ``config/``."""
    try:
        return config_file(name)
    except FileNotFoundError:
        candidate = Path(__file__).resolve().parents[3] / "config" / name
        if candidate.is_file():
            return candidate
        raise ConfigError(f"cannot find config/{name} (set EXO_SHARE_DIR or pass a path)") from None


def read_node_file(path: Path | str | None, name: str, node: str) -> tuple[dict[str, Any], str]:
    """The ``ros__parameters`` of ``node`` in ``path`` (default ``config/<name>``) and the file's name."""
    p = Path(path) if path is not None else find_config(name)
    return load_node_parameters(p, node), str(p)
