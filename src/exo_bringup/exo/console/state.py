"""What the console's page shows, as plain data (pure: no rclpy, no web server).

The node feeds :class:`ConsoleState` from the graph's topics (stamps in s on the graph's clock: sim time
under ``use_sim_time``); the web application reads :meth:`ConsoleState.snapshot` (only the points a page
has not seen yet). One lock guards it: the node's callbacks and the web server's threads share it.

- **Plots**: one point per knee sample, at most ``plot_rate_hz`` per second of graph time
  (:class:`exo.live.forward.RateLimiter`), kept for ``window_s``: knee angle and its target (deg: the
  user-facing edge), the assistance torque (``torque_command``, N m) and the user's own effort.
- **The user's own effort**: from the mean envelope of the knee-extensor EMG channels (the agonists of the
  extension task). When the EMG stream started with the intent pipeline's calibration protocol and the
  console saw it, the effort is the user's drive in % of a maximal contraction, on the same scale as the
  contribution `exo user adapt` measures (:class:`exo.intent.contribution.CalibratedDrive`; ``effort_kind``
  "calibrated"). Otherwise it is a relative measure, in % of the highest value seen in this session
  (``effort_kind`` "relative"). None without EMG.
- **Safety**: the monitor's state name, reason and active limits, and since when (graph time).
- **Session**: the user's pseudonym (never a name), the controller, the timer (graph time since the first
  sample), and the progress rows of ``exo progress`` (:func:`exo.personalize.progress.progress_rows`).
- **STOP**: when the page's STOP was received (graph time of the newest knee sample then) and the answer
  of the e-stop service.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from exo.intent.contribution import EXTENSOR_NAMES, CalibratedDrive
from exo.live.forward import RateLimiter

#: EMG channels over the knee extensors, the agonists of the seated knee-extension task.
EXTENSOR_CHANNELS: frozenset[str] = frozenset(EXTENSOR_NAMES)


@dataclass(frozen=True)
class ConsoleConfig:
    """How much the console keeps and shows.

    Attributes:
        window_s: graph time the plots cover, s.
        plot_rate_hz: points per second of graph time, Hz.
        target_knee_angle_rad: the task's target knee angle, rad (config/task.yaml).
        stale_after_s: wall seconds without a knee sample after which the page says the data stopped, s.
    """

    window_s: float = 20.0
    plot_rate_hz: float = 50.0
    target_knee_angle_rad: float = 0.2
    stale_after_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("window_s", "plot_rate_hz", "stale_after_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"console {name} must be a finite number > 0, got {value}")

    @property
    def capacity(self) -> int:
        """Points kept (window x rate)."""
        return max(2, math.ceil(self.window_s * self.plot_rate_hz) + 1)


@dataclass
class StopRecord:
    """The page's last STOP press.

    Attributes:
        presses: STOP presses received.
        graph_time_s: graph time (newest knee sample's stamp) when the press was received, s (None: no data yet).
        ok: the e-stop service's answer (None while it is pending).
        message: its message, or why it could not be called.
    """

    presses: int = 0
    graph_time_s: float | None = None
    ok: bool | None = None
    message: str = ""


@dataclass
class ConsoleState:
    """The console's live state (see the module docstring)."""

    config: ConsoleConfig = field(default_factory=ConsoleConfig)
    user: str = ""
    controller: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._points: deque[tuple[int, float, float, float, float | None, float | None]] = deque(
            maxlen=self.config.capacity)
        self._limiter = RateLimiter(self.config.plot_rate_hz)
        self._seq = 0
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._last_wall: float | None = None
        self._torque: float | None = None
        self._torque_source = ""
        self._effort_v: float | None = None
        self._effort_max_v = 0.0
        self._drive = CalibratedDrive()
        self._calibrated_drive: float | None = None
        self._safety: dict[str, Any] = {"state": "UNKNOWN", "reason": "no status from the safety monitor yet",
                                        "limits": [], "since_s": None}
        self._stop = StopRecord()
        self._progress: list[dict[str, Any]] | None = None
        self._progress_error = ""

    # --- inputs (the node) ----------------------------------------------------------------
    def on_knee(self, t_s: float, angle_rad: float, wall_s: float) -> None:
        """A knee sample (graph time ``t_s`` s, angle rad) received at ``wall_s`` (monotonic s)."""
        with self._lock:
            if self._last_t is not None and t_s < self._last_t:  # a new trial or a bag played again
                self._first_t = None
                self._points.clear()
            if self._first_t is None:
                self._first_t = t_s
            self._last_t, self._last_wall = t_s, wall_s
            if not self._limiter.accept(round(t_s * 1e9)):
                return
            self._seq += 1
            self._points.append((self._seq, t_s, math.degrees(angle_rad),
                                 math.degrees(self.config.target_knee_angle_rad), self._torque, self._effort_pct()))

    def on_command(self, torque_nm: float, source: str) -> None:
        """The newest ``torque_command`` (N m) and who produced it."""
        with self._lock:
            self._torque, self._torque_source = float(torque_nm), source

    def on_emg_envelope(self, channel_names: Sequence[str], rms_v: Sequence[float],
                        t_s: float | None = None) -> None:
        """One EMG envelope value per channel (V) at graph time ``t_s`` (s); the extensor channels make the
        effort (calibrated once the stream's calibration was seen, which needs ``t_s``)."""
        values = [v for n, v in zip(channel_names, rms_v, strict=True) if n in EXTENSOR_CHANNELS and math.isfinite(v)]
        if not values:
            return
        with self._lock:
            self._effort_v = sum(values) / len(values)
            self._effort_max_v = max(self._effort_max_v, self._effort_v)
            if t_s is not None:
                self._calibrated_drive = self._drive.push(t_s, self._effort_v)

    def _effort_kind(self) -> str:
        return "calibrated" if self._drive.calibrated else "relative"

    def _effort_pct(self) -> float | None:
        if self._drive.calibrated:
            return None if self._calibrated_drive is None else 100.0 * self._calibrated_drive
        if self._effort_v is None or self._effort_max_v <= 0:
            return None
        return 100.0 * self._effort_v / self._effort_max_v

    def on_status(self, t_s: float, state_name: str, reason: str, limits: Sequence[str]) -> None:
        """The safety monitor's status (graph time ``t_s`` s)."""
        with self._lock:
            if state_name != self._safety["state"]:
                self._safety["since_s"] = t_s
            self._safety.update(state=state_name, reason=reason, limits=list(limits))

    def set_progress(self, rows: list[dict[str, Any]] | None, error: str = "") -> None:
        """The user's sessions (``ProgressRow.to_dict()`` each), or why they could not be read."""
        with self._lock:
            self._progress, self._progress_error = rows, error

    def stop_pressed(self) -> float | None:
        """Record a STOP press received now; the graph time then (newest knee stamp, s; None without data)."""
        with self._lock:
            self._stop = StopRecord(self._stop.presses + 1, self._last_t, None, "e-stop requested")
            return self._last_t

    def stop_answered(self, ok: bool, message: str) -> None:
        """The e-stop service's answer to the last press (or why it could not be called)."""
        with self._lock:
            self._stop.ok, self._stop.message = ok, message

    # --- output (the page) ------------------------------------------------------------------
    def snapshot(self, since: int = 0, wall_s: float | None = None) -> dict[str, Any]:
        """Everything the page shows, with the plot points newer than sequence number ``since``.

        ``wall_s`` (monotonic s) tells whether the data is fresh (``live``: a knee sample within
        ``stale_after_s``).
        """
        with self._lock:
            pts = [p for p in self._points if p[0] > since]
            live = (self._last_wall is not None and wall_s is not None
                    and wall_s - self._last_wall <= self.config.stale_after_s)
            return {
                "seq": self._seq,
                "points": {"t": [p[1] for p in pts], "angle_deg": [p[2] for p in pts],
                           "target_deg": [p[3] for p in pts], "torque_nm": [p[4] for p in pts],
                           "effort_pct": [p[5] for p in pts]},
                "effort_kind": self._effort_kind(),
                "window_s": self.config.window_s,
                "live": live,
                "safety": dict(self._safety, limits=list(self._safety["limits"])),
                "torque": {"nm": self._torque, "source": self._torque_source},
                "session": {"user": self.user, "controller": self.controller,
                            "elapsed_s": (self._last_t - self._first_t) if self._first_t is not None
                            and self._last_t is not None else 0.0,
                            "graph_time_s": self._last_t},
                "stop": {"presses": self._stop.presses, "graph_time_s": self._stop.graph_time_s,
                         "ok": self._stop.ok, "message": self._stop.message},
                "progress": self._progress, "progress_error": self._progress_error,
            }
