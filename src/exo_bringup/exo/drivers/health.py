"""Device health shared by every driver: silent-device detection and garbage accounting.

Pure: time is passed in (monotonic seconds of the host), nothing reads a clock.

- :class:`DeviceHealth` tracks the last valid frame; ``check(now)`` reports the transition
  to *silent* (no valid frame for ``silent_after_s``) and back. A driver publishes only
  values decoded from a frame it just received, so a silent device produces no messages:
  the safety monitor's per-source timeout sees the silence. Nothing is ever re-published.
- :meth:`DeviceHealth.garbage_line` turns a framer's counters into one log line when new
  garbage arrived (at most once per ``report_period_s``), e.g.
  ``imu_thigh: dropped 3 frame(s) (checksum: 2, unknown type: 1), 17 byte(s) of garbage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class DeviceHealth:
    """Liveness and error counters of one device.

    Args:
        name: device name used in log lines.
        silent_after_s: no valid frame for this long -> silent, s.
        report_period_s: minimum interval between two garbage log lines, s.
    """

    name: str
    silent_after_s: float
    report_period_s: float = 1.0
    last_frame_s: float | None = None
    silent: bool = False
    frames: int = 0
    silences: int = 0
    _reported_rejected: int = 0
    _reported_bytes: int = 0
    _last_report_s: float = field(default=-1e18)

    def __post_init__(self) -> None:
        if not self.silent_after_s > 0:
            raise ValueError(f"{self.name}: silent_after_s must be > 0, got {self.silent_after_s}")

    def frame(self, now_s: float) -> str | None:
        """Note a valid frame at ``now_s``; returns a log line if the device was silent."""
        self.frames += 1
        self.last_frame_s = now_s
        if self.silent:
            self.silent = False
            return f"{self.name}: data again after a silence (frame {self.frames})"
        return None

    def check(self, now_s: float) -> str | None:
        """A log line when the device becomes silent at ``now_s`` (once per silence), else None."""
        if self.silent:
            return None
        since = self.last_frame_s
        if since is None:
            return None  # never heard yet: the start-up check is the node's business (see never_heard)
        if now_s - since > self.silent_after_s:
            self.silent = True
            self.silences += 1
            return (f"{self.name}: silent for {now_s - since:.3f} s (> {self.silent_after_s} s): "
                    "publishing nothing until valid frames arrive")
        return None

    def never_heard(self, now_s: float, started_s: float) -> bool:
        """True if no frame arrived within ``silent_after_s`` of ``started_s``."""
        return self.last_frame_s is None and now_s - started_s > self.silent_after_s

    def garbage_line(self, now_s: float, rejected: Mapping[str, int], bytes_dropped: int) -> str | None:
        """One log line summarising garbage received since the last line, or None."""
        total = sum(rejected.values())
        if total == self._reported_rejected and bytes_dropped == self._reported_bytes:
            return None
        if now_s - self._last_report_s < self.report_period_s:
            return None
        new_frames = total - self._reported_rejected
        new_bytes = bytes_dropped - self._reported_bytes
        self._reported_rejected, self._reported_bytes, self._last_report_s = total, bytes_dropped, now_s
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(rejected.items()) if v)
        return (f"{self.name}: dropped {new_frames} invalid frame(s), {new_bytes} byte(s) of garbage "
                f"(totals {total} frame(s){' - ' + reasons if reasons else ''}; {bytes_dropped} byte(s))")
