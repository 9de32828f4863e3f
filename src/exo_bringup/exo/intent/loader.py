"""Recorded EMG in a plain documented format, so labs can train on their own data.

One file = one session of one subject. Two formats (details and an example in docs/intent.md):

**NPZ** (``numpy.savez``), keys:

- ``emg`` (n_samples, n_channels) float, volts;
- ``sample_rate_hz`` scalar, Hz (1000-2000 for the shipped feature set; any rate > 900 Hz works);
- ``channel_names`` (n_channels,) str;
- optional, per sample: ``intent`` (int index into ``hold, extend, flex``, -1 = unlabelled, or
  class-name strings), ``velocity_rad_s`` (intended knee velocity, + = flexion),
  ``knee_angle_rad``, ``knee_velocity_rad_s``;
- optional scalars: ``calibration_s`` (length of the calibration segment at the start, s;
  default 0 = none), ``level`` (MAS level, -1 = unknown).

**CSV**: first line ``# sample_rate_hz=<Hz>`` (optionally ``; calibration_s=<s>; level=<n>``),
then a header ``time_s,<channel>,...[,intent][,velocity_rad_s][,knee_angle_rad][,knee_velocity_rad_s]``
and one row per sample (EMG in volts, ``intent`` as a class name or index).

Everything is checked: a missing key, a non-finite sample, a wrong shape or an unknown class
raises :class:`RecordingError` naming the file and the problem.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from exo.intent.dataset import Session
from exo.intent.drive import CLASSES

OPTIONAL = ("velocity_rad_s", "knee_angle_rad", "knee_velocity_rad_s")


class RecordingError(ValueError):
    """A recorded-EMG file that cannot be used (the message names the file and the problem)."""


def _intent(values: np.ndarray, path: Path) -> np.ndarray:
    v = np.asarray(values)
    if v.dtype.kind in "US" or v.dtype == object:
        lookup = {c: i for i, c in enumerate(CLASSES)}
        bad = sorted({str(x) for x in v if str(x) not in lookup and str(x) not in ("", "-1")})
        if bad:
            raise RecordingError(f"{path}: unknown intent class(es) {bad[:5]}; expected {list(CLASSES)}")
        return np.array([lookup.get(str(x), -1) for x in v], dtype=np.int64)
    out = v.astype(np.int64)
    if np.any((out < -1) | (out >= len(CLASSES))):
        raise RecordingError(f"{path}: intent indices must be -1..{len(CLASSES) - 1}")
    return out


def _session(path: Path, emg: np.ndarray, fs: float, names: list[str], cols: dict[str, np.ndarray],
             calibration_s: float, level: int) -> Session:
    if emg.ndim != 2 or emg.shape[1] != len(names) or emg.shape[0] == 0:
        raise RecordingError(f"{path}: emg has shape {emg.shape}, expected (n_samples, {len(names)} channels)")
    if not np.all(np.isfinite(emg)):
        raise RecordingError(f"{path}: emg has {int(np.sum(~np.isfinite(emg)))} non-finite sample(s)")
    if not (np.isfinite(fs) and fs > 900.0):
        raise RecordingError(f"{path}: sample_rate_hz {fs} must be > 900 Hz (band-pass up to 450 Hz)")
    n = emg.shape[0]
    for k, v in cols.items():
        if len(v) != n:
            raise RecordingError(f"{path}: {k} has {len(v)} values for {n} samples")
    intent = _intent(cols["intent"], path) if "intent" in cols else np.full(n, -1, dtype=np.int64)
    z = np.zeros(n)
    return Session(
        emg_v=emg.astype(np.float32), sample_rate_hz=float(fs), channel_names=tuple(names), step_s=1.0 / fs,
        intent=intent, velocity_rad_s=np.asarray(cols.get("velocity_rad_s", z), dtype=float),
        knee_angle_rad=np.asarray(cols.get("knee_angle_rad", z), dtype=float),
        knee_velocity_rad_s=np.asarray(cols.get("knee_velocity_rad_s", z), dtype=float),
        calibration_s=float(calibration_s), level=int(level), seed=-1,
    )


def load_recording(path: str | Path) -> Session:
    """Read one recorded session (``.npz`` or ``.csv``)."""
    p = Path(path)
    if not p.is_file():
        raise RecordingError(f"{p}: no such file")
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as d:
            for key in ("emg", "sample_rate_hz", "channel_names"):
                if key not in d:
                    raise RecordingError(f"{p}: key {key!r} missing (have {sorted(d.keys())})")
            cols = {k: d[k] for k in ("intent", *OPTIONAL) if k in d}
            return _session(p, np.asarray(d["emg"], dtype=float), float(d["sample_rate_hz"]),
                            [str(c) for c in d["channel_names"]], cols,
                            float(d["calibration_s"]) if "calibration_s" in d else 0.0,
                            int(d["level"]) if "level" in d else -1)
    if p.suffix == ".csv":
        with p.open(newline="") as fh:
            first = fh.readline().strip()
            meta = {}
            if first.startswith("#"):
                for part in first.lstrip("#").split(";"):
                    if "=" in part:
                        k, v = part.split("=", 1)
                        meta[k.strip()] = v.strip()
            if "sample_rate_hz" not in meta:
                raise RecordingError(f"{p}: first line must be '# sample_rate_hz=<Hz>'")
            rows = list(csv.reader(fh))
        if not rows:
            raise RecordingError(f"{p}: no header row")
        header, body = rows[0], rows[1:]
        if not header or header[0] != "time_s":
            raise RecordingError(f"{p}: header must start with time_s, got {header[:3]}")
        extra = [h for h in header[1:] if h in ("intent", *OPTIONAL)]
        names = [h for h in header[1:] if h not in extra]
        table = {h: [r[i] for r in body] for i, h in enumerate(header)}
        try:
            emg = np.array([[float(x) for x in table[c]] for c in names]).T if names else np.zeros((0, 0))
            cols = {k: (np.array(table[k]) if k == "intent" else np.array([float(x) for x in table[k]]))
                    for k in extra}
            fs = float(meta["sample_rate_hz"])
        except ValueError as exc:
            raise RecordingError(f"{p}: not a number: {exc}") from None
        if "intent" in cols and all(x.lstrip("-").isdigit() for x in cols["intent"]):
            cols["intent"] = cols["intent"].astype(np.int64)
        return _session(p, emg, fs, names, cols, float(meta.get("calibration_s", 0.0)), int(meta.get("level", -1)))
    raise RecordingError(f"{p}: unknown format {p.suffix!r} (use .npz or .csv)")


def save_npz(session: Session, path: str | Path) -> Path:
    """Write a session in the NPZ format above (per-step labels repeated per sample)."""
    p = Path(path)
    per = int(round(session.step_s * session.sample_rate_hz))
    n = session.emg_v.shape[0]

    def per_sample(a: np.ndarray) -> np.ndarray:
        return np.repeat(np.asarray(a), per)[:n]

    np.savez_compressed(p, emg=session.emg_v, sample_rate_hz=session.sample_rate_hz,
                        channel_names=np.array(session.channel_names), intent=per_sample(session.intent),
                        velocity_rad_s=per_sample(session.velocity_rad_s),
                        knee_angle_rad=per_sample(session.knee_angle_rad),
                        knee_velocity_rad_s=per_sample(session.knee_velocity_rad_s),
                        calibration_s=session.calibration_s, level=session.level)
    return p
