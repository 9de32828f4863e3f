"""Exoskeleton controllers: observation vector in, exo torque (N m) out.

- :mod:`exo.control.base`: the :class:`Controller` protocol and observation access.
- :mod:`exo.control.pid`: the PID baseline; :mod:`exo.control.zero`: zero torque.
- :mod:`exo.control.reference`: the reflex-aware baseline, a PID tracking a slow minimum-jerk reference.
- :mod:`exo.control.sac`: the trained SAC policy (numpy or onnxruntime inference, no torch).
- :mod:`exo.control.ziegler_nichols`: how the PID gains in ``config/controllers.yaml`` were found.

Controllers are built by name with :func:`make_controller`. To add one, add
``"name": "module:Class"`` to
:data:`CONTROLLERS` (modules are imported on first use, so heavy dependencies
such as torch load only when that controller is asked for), or call
:func:`register_controller` from a plugin. The evaluator and the controller
node take any registered name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exo.control.base import Controller, ObsLayout

__all__ = [
    "CONTROLLERS",
    "Controller",
    "ControllerSpec",
    "ObsLayout",
    "available_controllers",
    "load_controller_params",
    "make_controller",
    "register_controller",
]

#: Registry: controller name -> "module:attribute" of a class/factory taking keyword parameters.
CONTROLLERS: dict[str, str | Callable[..., Controller]] = {
    "pid": "exo.control.pid:PidController",
    "reference_pid": "exo.control.reference:ReferencePidController",
    "zero": "exo.control.zero:ZeroTorqueController",
    "sac": "exo.control.sac:SacController",
    "assessment": "exo.control.assessment:AssessmentController",
}

#: Node whose ROS parameter file (config/controllers.yaml) holds the controllers' parameters.
NODE_NAME = "controller"


def register_controller(name: str, factory: str | Callable[..., Controller]) -> None:
    """Make ``make_controller(name, ...)`` build controllers with ``factory``.

    Args:
        name: registry name.
        factory: a callable taking keyword parameters, or its "module:attribute" path.
    """
    CONTROLLERS[name] = factory


def available_controllers() -> tuple[str, ...]:
    """Registered controller names."""
    return tuple(CONTROLLERS)


def _resolve(name: str) -> Callable[..., Controller]:
    try:
        target = CONTROLLERS[name]
    except KeyError:
        raise ValueError(f"unknown controller {name!r}; available: {', '.join(CONTROLLERS)}") from None
    if callable(target):
        return target
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def make_controller(name: str, **params: Any) -> Controller:
    """Build the controller registered as ``name`` with keyword ``params``.

    Example: ``make_controller("pid", kp=600.0, ki=2000.0, kd=4.0)``.
    """
    return _resolve(name)(**params)


@dataclass(frozen=True)
class ControllerSpec:
    """A picklable controller factory: name + parameters (what worker processes receive).

    Calling it builds a fresh controller; any other zero-argument callable
    returning a :class:`Controller` works where a factory is expected.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self) -> Controller:
        return make_controller(self.name, **dict(self.params))


def load_controller_params(
    name: str, path: str | Path | None = None, key: str | None = None
) -> dict[str, Any]:
    """Keyword parameters of controller ``name`` from ``config/controllers.yaml``.

    The file is the controller node's ROS 2 parameter file: entries
    ``/**``, ``/**/controller``, ``controller`` or ``/controller`` with
    ``ros__parameters: {<name>: {...}}`` (merged in that order). ``key`` picks
    another entry than ``name`` (e.g. ``"pid_zn_no_overshoot"``, an
    alternative gain set). Returns ``{}`` when there is no entry (e.g. "zero").

    Raises:
        exo.params.ConfigError: unreadable file or no controller section.
    """
    from exo.params import ConfigError, load_yaml
    from exo.paths import config_file

    path = Path(path) if path is not None else config_file("controllers.yaml")
    document = load_yaml(path) or {}
    parameters: dict[str, Any] = {}
    found = False
    for node_key in ("/**", f"/**/{NODE_NAME}", NODE_NAME, f"/{NODE_NAME}"):
        entry = document.get(node_key) if isinstance(document, Mapping) else None
        if isinstance(entry, Mapping) and isinstance(entry.get("ros__parameters"), Mapping):
            parameters.update(entry["ros__parameters"])
            found = True
    if not found:
        raise ConfigError(f"{path}: no '/**/{NODE_NAME}' (or '{NODE_NAME}') entry with ros__parameters")
    if key is not None and not isinstance(parameters.get(key), Mapping):
        entries = ", ".join(k for k, v in parameters.items() if isinstance(v, Mapping)) or "none"
        raise ConfigError(f"{path}: no parameter entry {key!r} for the controller (entries: {entries})")
    return dict(parameters.get(key or name) or {})
