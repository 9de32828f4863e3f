"""A watcher node for ``exo sim``: readiness, a live line, and an end-of-run summary.

It only listens (joint_states, torque_command, safety/status, sim/truth) and
never publishes, so it cannot change the run it reports on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from exo import contract
from exo.ros.convert import from_time_msg
from exo.ros.probe import RosProbe


@dataclass
class Trace:
    """Time series collected during the run (SI units)."""

    t: list[float] = field(default_factory=list)
    knee_rad: list[float] = field(default_factory=list)
    command_t: list[float] = field(default_factory=list)
    command_nm: list[float] = field(default_factory=list)
    command_source: dict[str, int] = field(default_factory=dict)
    truth_t: list[float] = field(default_factory=list)
    human_knee_rad: list[float] = field(default_factory=list)
    interaction_nm: list[float] = field(default_factory=list)
    target_rad: float = math.nan
    safety_states: list[tuple[float, str, str]] = field(default_factory=list)


class SimMonitor:
    def __init__(self, domain_id: int, namespace: str, events: bool = False) -> None:
        self.probe = RosProbe(domain_id, namespace, name="exo_sim_monitor", events=events)
        self.trace = Trace()
        # the probe's watcher QoS (a queue of 1,000): no sample is lost when the watcher is slower than the graph
        watch = self.probe.watch
        watch(contract.JOINT_STATES, self._on_joint)
        self._graph_outputs = {
            contract.TORQUE_COMMAND.name: watch(contract.TORQUE_COMMAND, self._on_command),
            contract.SAFETY_STATUS.name: watch(contract.SAFETY_STATUS, self._on_status),
        }
        watch(contract.SIM_TRUTH, self._on_truth)
        self.namespace = namespace

    def start_source(self, timeout_s: float) -> None:
        """Start a sensor source launched with ``paused:=true`` once this watcher has matched the publishers of
        joint_states, torque_command and the safety status (see :meth:`exo.ros.probe.RosProbe.start_source`)."""
        self.probe.start_source([contract.JOINT_STATES, contract.TORQUE_COMMAND, contract.SAFETY_STATUS], timeout_s)

    # --- callbacks -------------------------------------------------------
    def _on_joint(self, msg) -> None:
        if msg.position:
            self.trace.t.append(from_time_msg(msg.header.stamp))
            self.trace.knee_rad.append(msg.position[0])

    def _on_command(self, msg) -> None:
        self.trace.command_t.append(from_time_msg(msg.header.stamp))
        self.trace.command_nm.append(msg.torque)
        self.trace.command_source[msg.source] = self.trace.command_source.get(msg.source, 0) + 1

    def _on_status(self, msg) -> None:
        states = self.trace.safety_states
        if not states or states[-1][1] != msg.state_name:
            states.append((from_time_msg(msg.header.stamp), msg.state_name, msg.reason))

    def _on_truth(self, msg) -> None:
        self.trace.truth_t.append(from_time_msg(msg.header.stamp))
        self.trace.human_knee_rad.append(msg.human_knee_angle)
        self.trace.interaction_nm.append(msg.interaction_torque)
        self.trace.target_rad = msg.target_knee_angle

    # --- queries -----------------------------------------------------------
    @property
    def sim_time_s(self) -> float | None:
        return self.trace.t[-1] if self.trace.t else None

    def present_nodes(self) -> set[str]:
        ns = "/" + self.namespace.strip("/") if self.namespace.strip("/") else "/"
        return {n for n, node_ns in self.probe.node.get_node_names_and_namespaces() if node_ns == ns}

    def unmatched_outputs(self) -> list[str]:
        """Graph outputs (torque_command, safety/status) whose publisher this watcher has not matched yet."""
        return [name for name, sub in self._graph_outputs.items() if sub.get_publisher_count() == 0]

    def wait_until_up(self, runner, names: list[str], timeout_s: float, *, outputs: bool = False,
                      ready: Callable[[], bool] | None = None,
                      on_ready: Callable[[str, float], None] | None = None) -> None:
        """Wait until the nodes ``names`` of ``runner`` are in the ROS graph (the one readiness wait of the
        ``exo`` commands).

        With ``outputs``, also until this watcher matched the graph's outputs; ``ready`` is any further
        condition. ``on_ready(name, seconds)`` is told of each node as it appears. A node that dies on
        the way raises :class:`exo.runner.NodeDied` (a native crash before it joined is started once
        more, :meth:`exo.runner.GraphRunner.check`); not up within ``timeout_s``: TimeoutError.
        """
        t0 = time.monotonic()
        pending = list(names)
        while pending or (outputs and self.unmatched_outputs()) or (ready is not None and not ready()):
            runner.check(awaiting=pending)
            present = self.present_nodes()
            for name in [p for p in pending if p in present]:
                pending.remove(name)
                if on_ready is not None:
                    on_ready(name, time.monotonic() - t0)
            if time.monotonic() - t0 > timeout_s:
                what = pending or (self.unmatched_outputs() if outputs else []) or ["a readiness condition"]
                raise TimeoutError(f"not up after {timeout_s:.0f} s: {', '.join(what)}")
            self.spin(0.05)

    def spin(self, seconds: float) -> None:
        self.probe.spin_for(seconds)

    def live_line(self) -> str:
        tr = self.trace
        if not tr.t:
            return "waiting for the first sensor sample"
        torque = tr.command_nm[-1] if tr.command_nm else math.nan
        state = tr.safety_states[-1][1] if tr.safety_states else "?"
        return (f"t={tr.t[-1]:6.2f} s  knee={math.degrees(tr.knee_rad[-1]):6.1f} deg  "
                f"torque={torque:+7.2f} N m  safety={state}")

    def summary(self, wall_s: float):
        """A rich table of the run: timing, trial metrics, safety events."""
        from rich.table import Table

        tr = self.trace
        table = Table(title="exo sim summary", show_header=False)
        table.add_column("what")
        table.add_column("value")
        sim_s = tr.t[-1] - tr.t[0] if len(tr.t) > 1 else 0.0
        table.add_row("simulated time", f"{sim_s:.2f} s in {wall_s:.2f} s wall (real-time factor "
                      f"{sim_s / wall_s if wall_s > 0 else math.nan:.2f})")
        table.add_row("sensor samples / commands", f"{len(tr.t)} / {len(tr.command_nm)}")
        if tr.knee_rad:
            table.add_row("final exo knee angle", f"{math.degrees(tr.knee_rad[-1]):.2f} deg")
        if not math.isnan(tr.target_rad) and tr.knee_rad:
            table.add_row("target / final error", f"{math.degrees(tr.target_rad):.2f} deg / "
                          f"{math.degrees(abs(tr.knee_rad[-1] - tr.target_rad)):.2f} deg")
        if tr.command_nm:
            table.add_row("peak |torque_command|", f"{max(abs(x) for x in tr.command_nm):.2f} N m")
            table.add_row("command sources", ", ".join(f"{k}: {v}" for k, v in sorted(tr.command_source.items())))
        if tr.interaction_nm:
            table.add_row("peak |interaction torque|", f"{max(abs(x) for x in tr.interaction_nm):.2f} N m")
        metrics = self.trial_metrics()
        if metrics is not None:
            settle = metrics.settling_time_s
            settling = f"settling {settle:.2f} s" if settle == settle else "not settled"
            table.add_row("trial metrics (human knee, exo.metrics)",
                          f"{settling}, RMS {metrics.rms_torque_nm:.1f} N m, peak {metrics.peak_torque_nm:.1f} N m, "
                          f"final error {metrics.final_error_deg:.2f} deg, overshoot {metrics.overshoot_deg:.2f} deg")
        table.add_row("safety states", " -> ".join(s for _, s, _ in tr.safety_states) or "none received")
        return table

    def trial_metrics(self):
        """The evaluator's metrics (exo.metrics) of the run, from sim/truth and torque_command; None if too short."""
        from exo.metrics import compute_trial_metrics

        tr = self.trace
        torque_at = dict(zip(tr.command_t, tr.command_nm, strict=True))
        t = np.asarray(tr.truth_t)
        order = np.argsort(t, kind="stable")
        t, keep = np.unique(t[order], return_index=True)
        if t.size < 100 or math.isnan(tr.target_rad):
            return None
        angle = np.asarray(tr.human_knee_rad)[order][keep]
        interaction = np.asarray(tr.interaction_nm)[order][keep]
        exo = np.array([torque_at.get(x, 0.0) for x in t])
        try:
            return compute_trial_metrics(t - t[0], angle, tr.target_rad, interaction, exo)
        except ValueError:
            return None

    def close(self) -> None:
        self.probe.close()
