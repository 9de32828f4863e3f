"""Import a ROS message/service class from its interface name (``pkg/msg/Type``)."""

from __future__ import annotations

import importlib
from typing import Any


def interface_class(name: str) -> Any:
    """The Python class of ``pkg/msg/Type`` or ``pkg/srv/Type``, with an error naming what is missing."""
    parts = name.split("/")
    if len(parts) != 3 or parts[1] not in ("msg", "srv", "action"):
        raise ValueError(f"not an interface name (expected pkg/msg/Type): {name!r}")
    pkg, kind, type_name = parts
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
    except ImportError as exc:
        hint = " (run scripts/setup.sh to build exo_msgs)" if pkg == "exo_msgs" else ""
        raise ImportError(f"interface package {pkg!r} is not importable{hint}: {exc}") from exc
    try:
        return getattr(module, type_name)
    except AttributeError:
        raise ImportError(f"{pkg}.{kind} has no type {type_name!r}") from None
