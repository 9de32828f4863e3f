"""Read ROS 2 parameter files without ROS, so offline tools use the nodes' own configuration.

Every ``config/*.yaml`` a node reads is a standard ROS 2 parameter file::

    /**:                      # or the node, in any namespace: /**/safety_monitor:
      ros__parameters:
        user_torque_cap_nm: 40.0
        fallback:
          kind: pid

:func:`load_node_parameters` returns the ``ros__parameters`` mapping that
applies to one node (wildcard entries first, then the node's own, deeper keys
merged), which the pure cores (safety limits, controller gains, twin settings)
validate themselves. Errors name the file and the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file or value is malformed; the message names the file/key."""


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: Path | str) -> Any:
    """Parse a YAML file, raising :class:`ConfigError` naming the file on any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {describe_yaml_error(exc)}") from None


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: ``line L, column C: <problem> (<context> at line L', column C')``.

    PyYAML's own text spans several lines and names ``<unicode string>`` instead of the file;
    callers prefix the file name.
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem is None:
        return " ".join(str(exc).split())
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else str(problem)
    context = getattr(exc, "context", None)
    if context:
        context_mark = getattr(exc, "context_mark", None)
        where = (f" at line {context_mark.line + 1}, column {context_mark.column + 1}"
                 if context_mark is not None and context_mark is not mark else "")
        text += f" ({context}{where})"
    return " ".join(text.split())


def load_node_parameters(path: Path | str, node_name: str) -> dict[str, Any]:
    """The parameters ``node_name`` gets from the ROS parameter file at ``path`` (nested dict)."""
    data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of node names to 'ros__parameters'")
    params: dict[str, Any] = {}
    matched = False
    # rcl matches keys against the node's fully qualified name: "/**/name" matches it in any
    # namespace; a bare "name" only in the root namespace (accepted here for offline use).
    for key in ("/**", node_name, "/" + node_name, "/**/" + node_name):
        entry = data.get(key)
        if entry is None:
            continue
        if not isinstance(entry, Mapping) or not isinstance(entry.get("ros__parameters"), Mapping):
            raise ConfigError(f"{path}: entry {key!r} must contain a 'ros__parameters' mapping")
        params = _merge(params, entry["ros__parameters"])
        matched = True
    if not matched:
        keys = ", ".join(map(repr, data)) or "none"
        raise ConfigError(f"{path}: no parameters for node {node_name!r} (keys: {keys}; expected '/**' or '/**/{node_name}')")
    return params


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters as ROS sees them: ``{"fallback": {"kind": "pid"}}`` -> ``{"fallback.kind": "pid"}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out

