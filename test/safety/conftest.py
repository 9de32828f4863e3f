"""A small rig driving a SafetyMonitor the way the node does: sensors, request, update, every period."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from exo.safety import SafetyDecision, SafetyLimits, SafetyMonitor, SafetyState


class Rig:
    """Feeds every watched source and a request each control period, then calls update().

    ``angle``, ``velocity`` and ``interaction`` are what the sensors report (rad, rad/s, N m).
    """

    def __init__(self, limits: SafetyLimits | None = None) -> None:
        self.limits = limits or SafetyLimits()
        self.monitor = SafetyMonitor(self.limits)
        self.k = 0
        self.t = 0.0
        self.seq = 0
        self.angle, self.velocity, self.interaction = 0.8, 0.0, 0.0

    def sensors(self, skip: Iterable[str] = ()) -> None:
        for source in self.limits.sensor_timeouts_s:
            if source in skip:
                continue
            if source == "joint_states":
                ok = self.monitor.on_sensor(source, self.t, knee_angle_rad=self.angle,
                                            knee_velocity_rad_s=self.velocity, motor_torque_nm=0.0)
            elif source.startswith("interaction"):
                ok = self.monitor.on_sensor(source, self.t, interaction_torque_nm=self.interaction)
            else:
                ok = self.monitor.on_sensor(source, self.t)
            assert ok, self.monitor.diagnostics()["last_invalid_sensor_sample"]

    def step(self, torque: float | None = None, skip: Iterable[str] = ()) -> SafetyDecision:
        """One control period: time advances, sensors (minus ``skip``) and the request arrive, update()."""
        self.k += 1
        self.t = round(self.k * self.limits.control_period_s, 9)
        self.sensors(skip)
        if torque is not None:
            self.seq += 1
            self.monitor.on_request(self.t, torque, "sac", self.seq)
        return self.monitor.update(self.t)

    def run(self, n: int, torque: float | None = None, skip: Iterable[str] = ()) -> list[SafetyDecision]:
        return [self.step(torque, skip) for _ in range(n)]

    def until(self, predicate: Callable[[SafetyDecision], bool], torque: float | None = None,
              skip: Iterable[str] = (), max_steps: int = 1000) -> SafetyDecision:
        for _ in range(max_steps):
            d = self.step(torque, skip)
            if predicate(d):
                return d
        raise AssertionError(f"condition not reached in {max_steps} steps; last: {d}")

    def arm(self, torque: float = 0.0) -> SafetyDecision:
        """Run until the controller's request passes (state OK or LIMITING)."""
        return self.until(lambda d: d.state in (SafetyState.OK, SafetyState.LIMITING), torque)


@pytest.fixture
def rig() -> Callable[..., Rig]:
    """Factory: ``rig(limits=None)`` -> a fresh :class:`Rig`."""
    return Rig
