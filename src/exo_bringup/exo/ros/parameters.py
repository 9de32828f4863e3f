"""Declare node parameters with descriptions and ranges, and validate changes.

A node lists its parameters as :class:`Param` entries (name, default, unit,
description, range); :func:`declare_all` declares them with a
``ParameterDescriptor`` (so ``ros2 param describe`` shows units and ranges),
refuses out-of-range values at start-up with an error naming the parameter,
and returns the values as a dict.

Before declaring, it checks every ``--params-file`` of the process's command
line (:mod:`exo.ros.params_file`): rcl silently keeps an earlier file's value
when a later file gives the same parameter a value of another type, and a
``/**`` entry can lose to an earlier file's ``/**/<node>`` entry; both are
refused with the file, line and key named.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from exo.ros.params_file import (
    ParamsFileError,
    check_params_files,
    ros_param_rules,
    ros_params_files,
    shadowed_values,
)


@dataclass(frozen=True)
class Param:
    """One node parameter.

    Attributes:
        name: ROS parameter name (dots for groups).
        default: default value; its type is the parameter's type.
        description: what it does, with units.
        low, high: inclusive range for numbers (None = unbounded).
        choices: allowed values for strings.
        read_only: cannot change after start-up.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = True

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(description=self.description, read_only=self.read_only)
        # a YAML "5" for a float parameter must not be refused as the wrong type
        desc.dynamic_typing = isinstance(self.default, float)
        if self.choices:
            desc.additional_constraints = "one of: " + ", ".join(self.choices)
        if isinstance(self.default, bool):
            return desc
        if isinstance(self.default, int) and (self.low is not None or self.high is not None):
            desc.integer_range = [IntegerRange(from_value=int(self.low if self.low is not None else -(2**31)),
                                               to_value=int(self.high if self.high is not None else 2**31 - 1),
                                               step=0)]
        elif isinstance(self.default, float) and (self.low is not None or self.high is not None):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(self.low if self.low is not None else -1e300),
                to_value=float(self.high if self.high is not None else 1e300), step=0.0)]
        return desc

    def check(self, value: Any) -> str | None:
        """Why ``value`` is refused, or None if it is acceptable."""
        if self.choices and value not in self.choices:
            return f"parameter '{self.name}': {value!r} is not one of {', '.join(self.choices)}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value and self.default == self.default:  # NaN (a NaN default means "required")
                return f"parameter '{self.name}' is NaN"
            if self.low is not None and value < self.low:
                return f"parameter '{self.name}' = {value} is below its minimum {self.low}"
            if self.high is not None and value > self.high:
                return f"parameter '{self.name}' = {value} is above its maximum {self.high}"
        return None


class ParameterError(ValueError):
    """A node parameter has a value the node cannot run with."""


_command_line: list[str] | None = None


def use_command_line(argv: Sequence[str]) -> None:
    """Record the arguments given to ``rclpy.init`` (:func:`exo.ros.node_main.run` does), whose
    ``--params-file`` entries :func:`declare_all` checks; without it, ``sys.argv`` is used."""
    global _command_line
    _command_line = list(argv)


def command_line() -> list[str]:
    """The process's ROS command line (see :func:`use_command_line`)."""
    return list(_command_line) if _command_line is not None else list(sys.argv)


def declare_all(node: Node, params: list[Param]) -> dict[str, Any]:
    """Declare ``params`` on ``node``; returns ``{name: value}`` or raises :class:`ParameterError`.

    Refused (the message names the file, line and key): a value of the wrong type in any
    ``--params-file`` of the command line, a value a later file sets that rcl does not deliver,
    an out-of-range value, a string not among its choices.
    """
    argv = command_line()
    declared = {p.name: p.default for p in params}
    name, namespace = node.get_name(), node.get_namespace()
    try:
        files = check_params_files(ros_params_files(argv), name, namespace, declared)
    except ParamsFileError as exc:
        raise ParameterError(str(exc)) from None
    values: dict[str, Any] = {}
    received: dict[str, Any] = {}
    for p in params:
        value = received[p.name] = node.declare_parameter(p.name, p.default, p.descriptor()).value
        if isinstance(p.default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(p.default):
            raise ParameterError(f"parameter '{p.name}' must be a {type(p.default).__name__}, got {value!r}")
        problem = p.check(value)
        if problem:
            raise ParameterError(problem)
        values[p.name] = value
    shadowed = shadowed_values(files, name, namespace, declared, received, ros_param_rules(argv))
    if shadowed:
        raise ParameterError("; ".join(shadowed))
    return values
