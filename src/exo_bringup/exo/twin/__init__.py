"""Digital twin of a seated spastic knee in a knee exoskeleton (pure core, no rclpy).

- :mod:`exo.twin.interface`: :class:`Measurements`, :class:`TwinState`, :class:`KneeTwin`;
- :mod:`exo.twin.reflex`: the spastic reflex model (Table I levels, per-subject noise);
- :mod:`exo.twin.full`: MyoLeg + exoskeleton twin, kind "full";
- :mod:`exo.twin.reduced`: 1-DoF knee twin fitted to the full one, kind "reduced";
- :mod:`exo.twin.config`: the ``config/twin.yaml`` loader (the task's ``config/env.yaml``: :mod:`exo.envs.config`).

:func:`make_twin` is the one entry point the env, the tools and the ROS shell use.
The twins (and MuJoCo) are imported only when a twin is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exo.twin.interface import KneeTwin, Measurements, TwinState

__all__ = ["KINDS", "KneeTwin", "Measurements", "TwinState", "make_twin"]

#: Twin kinds :func:`make_twin` builds.
KINDS = ("full", "reduced")


def make_twin(kind: str, *, config: Any = None, config_path: str | Path | None = None, **overrides: Any) -> KneeTwin:
    """Build a twin of ``kind`` ("full" or "reduced").

    Args:
        kind: "full" (MyoLeg, :class:`exo.twin.full.MyoLegKneeTwin`) or "reduced"
            (:class:`exo.twin.reduced.ReducedKneeTwin`).
        config: a :class:`exo.twin.config.TwinConfig` (default: loaded from ``config_path``
            or ``config/twin.yaml``).
        config_path: the twin YAML to load when ``config`` is None.
        **overrides: configuration overrides, ``field=value`` (unique field names, e.g.
            ``subject_noise=False``), ``section__field=value`` (e.g. ``exo__max_torque_nm=50.0``)
            or whole sections; see :meth:`exo.twin.config.TwinConfig.with_overrides`.

    Raises:
        ValueError: unknown kind. exo.params.ConfigError: bad configuration or override.
    """
    from exo.twin.config import load_twin_config

    if kind not in KINDS:
        raise ValueError(f"unknown twin kind {kind!r}; expected one of {KINDS}")
    cfg = config if config is not None else load_twin_config(config_path)
    if overrides:
        cfg = cfg.with_overrides(**overrides)
    if kind == "full":
        from exo.twin.full import MyoLegKneeTwin

        return MyoLegKneeTwin(cfg)
    from exo.twin.reduced import ReducedKneeTwin

    return ReducedKneeTwin(cfg)
