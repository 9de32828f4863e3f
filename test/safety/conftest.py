"""A small rig driving a SafetyMonitor the way the node does: sensors, request, update, every period.

Also the hypothesis profile of the safety property tests (``test_*properties.py`` here):

- without ``--hypothesis-profile`` the active profile is hypothesis's own: ``default``, or its
  built-in ``ci`` when a CI environment variable is set (same ``max_examples=100``, derandomized,
  no example database). The property tests take their example counts from the active profile
  (``examples(weight)`` in each file: ``weight x max_examples``), so CI runs exactly the numbers
  it always ran (150 / 100 / 30 for the monitor's three properties).
- ``--hypothesis-profile=bench`` loads the ``bench`` profile registered here: ``max_examples`` from
  the environment variable ``EXO_HYPOTHESIS_EXAMPLES`` (default 10000), no deadline, random (seed
  with ``--hypothesis-seed``), no example database (a run depends only on code and seed), failure
  blobs printed. ``bench/bench_safety_properties.py`` drives it. Give a path under ``test/safety``
  on the command line: pytest must load this file before it loads the profile, e.g.
  ``EXO_HYPOTHESIS_EXAMPLES=5000 pytest --hypothesis-profile=bench test/safety/test_safety_properties.py``.

The built-in ``default``/``ci`` profiles are deliberately not re-registered: hypothesis settings are
process-wide, so a profile loaded from this directory's conftest would also change the hypothesis
tests of other directories (test/twin, test/metrics) and depend on the collection order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import pytest
from hypothesis import HealthCheck, settings

from exo.safety import SafetyDecision, SafetyLimits, SafetyMonitor, SafetyState

EXAMPLES_ENV = "EXO_HYPOTHESIS_EXAMPLES"
BENCH_DEFAULT_EXAMPLES = 10_000


def bench_examples() -> int:
    """``max_examples`` of the ``bench`` profile: ``$EXO_HYPOTHESIS_EXAMPLES``, a positive integer."""
    raw = os.environ.get(EXAMPLES_ENV, "").strip()
    if not raw:
        return BENCH_DEFAULT_EXAMPLES
    try:
        n = int(raw.replace("_", ""))
    except ValueError:
        n = 0
    if n < 1:
        raise pytest.UsageError(f"{EXAMPLES_ENV}={raw!r}: expected a positive integer")
    return n


settings.register_profile(
    "bench",
    parent=settings.get_profile("default"),  # not the CI one, whatever the environment
    max_examples=bench_examples(),
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


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
