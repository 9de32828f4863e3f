"""A user's progress across sessions: metrics, assistance level and controller versions (``exo progress``).

:func:`progress_rows` joins what the profile knows (sessions, the assist-as-needed history, controller
versions) with each control session's metrics (:meth:`exo.bags.analysis.SessionAnalysis.summary` of its
bag: peak and RMS interaction torque N m, final error deg, safety transitions; cached in the store as the
session's ``summary`` artefact). :func:`plot_progress` draws them (PNG) and :func:`html_report` makes a
self-contained HTML page (the figure inlined, no external files). Pure functions of plain data: the CLI
decides what is read from the store and where, if anywhere, plaintext goes.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from exo.users.profile import Profile

#: Session kinds whose bags hold controlled knee-extension trials (the ones with metrics).
CONTROL_KINDS = ("sim", "real", "replay")
#: Metrics of a session row, with units (means over the session's scored trials).
ROW_METRICS = {"peak_torque_nm": "N m", "rms_torque_nm": "N m", "final_error_deg": "deg"}


@dataclass(frozen=True)
class ProgressRow:
    """One session of a user in the progress table.

    Attributes:
        session: the session number.
        date: day, ``YYYY-MM-DD``.
        kind: "sim", "real", "assessment", ...
        controller: the controller it ran ("" for sessions without one).
        controller_version: the user's controller version it ran ("generic" before any; "" if not a
            user's controller).
        assistance: the assistance level it ran at (None when not recorded).
        next_assistance: the level the assist-as-needed rule set after it (None if it was not judged).
        decision: the rule's decision ("raise", "lower", "hold"; "" if not judged).
        trials: scored trials of its bag (0 without metrics).
        peak_torque_nm, rms_torque_nm, final_error_deg: means over the scored trials (NaN without).
        safety_transitions: transitions of the safety monitor in the bag (-1 without metrics).
    """

    session: int
    date: str
    kind: str
    controller: str = ""
    controller_version: str = ""
    assistance: float | None = None
    next_assistance: float | None = None
    decision: str = ""
    trials: int = 0
    peak_torque_nm: float = math.nan
    rms_torque_nm: float = math.nan
    final_error_deg: float = math.nan
    safety_transitions: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def progress_rows(profile: Profile, summaries: Mapping[int, Mapping[str, Any]]) -> list[ProgressRow]:
    """One row per session of ``profile``, with the metrics of ``summaries`` (session -> summary)."""
    judged = {h.session: h for h in profile.assistance.history if h.session is not None}
    rows = []
    for s in sorted(profile.sessions, key=lambda s: s.number):
        meta = s.metadata
        step = judged.get(s.number)
        level = meta.get("assistance")
        if level is None and step is not None:
            level = step.level_before
        summary = summaries.get(s.number) or {}

        def metric(name: str, summary: Mapping[str, Any] = summary) -> float:
            value = summary.get(name)
            return float(value) if isinstance(value, (int, float)) and value is not None else math.nan

        rows.append(ProgressRow(
            session=s.number, date=s.date, kind=s.kind,
            controller=str(meta.get("controller", "")) if s.kind in CONTROL_KINDS else "",
            controller_version=str(meta.get("controller_version", "")),
            assistance=None if level is None else float(level),
            next_assistance=None if step is None else step.level_after,
            decision="" if step is None else step.decision,
            trials=int(summary.get("scored_trials", 0) or 0),
            peak_torque_nm=metric("peak_torque_nm"), rms_torque_nm=metric("rms_torque_nm"),
            final_error_deg=metric("final_error_deg"),
            safety_transitions=int(summary["safety_transitions"]) if "safety_transitions" in summary else -1))
    return rows


def _fmt(value: float | None, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


#: Columns of the table: (header, function of a row).
COLUMNS: tuple[tuple[str, Any], ...] = (
    ("session", lambda r: str(r.session)),
    ("date", lambda r: r.date),
    ("kind", lambda r: r.kind),
    ("controller", lambda r: r.controller + (f" ({r.controller_version})" if r.controller_version else "")),
    ("assistance", lambda r: _fmt(r.assistance, ".2f")),
    ("next", lambda r: (_fmt(r.next_assistance, ".2f") + f" {r.decision}").strip() if r.decision else "-"),
    ("trials", lambda r: str(r.trials) if r.trials else "-"),
    ("peak N m", lambda r: _fmt(r.peak_torque_nm)),
    ("RMS N m", lambda r: _fmt(r.rms_torque_nm)),
    ("final error deg", lambda r: _fmt(r.final_error_deg)),
    ("safety transitions", lambda r: str(r.safety_transitions) if r.safety_transitions >= 0 else "-"),
)


def table_rows(rows: list[ProgressRow]) -> list[list[str]]:
    """The table's cells (strings), one list per row, in :data:`COLUMNS` order."""
    return [[f(r) for _, f in COLUMNS] for r in rows]


def plot_progress(rows: list[ProgressRow], profile: Profile) -> bytes:
    """A PNG (bytes) of the sessions: assistance level, peak and RMS interaction torque, final error;
    the controller version deployments marked. Only sessions with metrics or a level are drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(8.0, 8.0), sharex=True)
    x_level = [r.session for r in rows if r.assistance is not None]
    y_level = [r.assistance for r in rows if r.assistance is not None]
    ax = axes[0]
    ax.plot(x_level, y_level, "o-", color="tab:purple", label="assistance level (session ran at)")
    ax.axhline(profile.assistance.schedule.floor, color="grey", ls=":", label="floor (therapist)")
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("assistance level (-)")
    ax.legend(loc="lower left", fontsize=8)
    scored = [r for r in rows if r.trials > 0]
    xs = [r.session for r in scored]
    axes[1].plot(xs, [r.peak_torque_nm for r in scored], "o-", label="peak")
    axes[1].plot(xs, [r.rms_torque_nm for r in scored], "s-", label="RMS until settling")
    axes[1].set_ylabel("interaction torque (N m)")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[2].plot(xs, [r.final_error_deg for r in scored], "o-", color="tab:red")
    axes[2].axhline(profile.assistance.schedule.error_tolerance_deg, color="grey", ls=":",
                    label="task tolerance (therapist)")
    axes[2].set_ylabel("final knee error (deg)")
    axes[2].set_xlabel("session")
    axes[2].legend(loc="upper right", fontsize=8)
    shown = set()
    for r in rows:
        if r.controller_version and r.controller_version not in shown:
            shown.add(r.controller_version)
            for a in axes:
                a.axvline(r.session, color="tab:green", alpha=0.3)
            axes[0].annotate(r.controller_version, (r.session, 1.0), fontsize=8, color="tab:green")
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle(f"user {profile.user_id}: progress over {len(rows)} session(s)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def html_report(rows: list[ProgressRow], profile: Profile, png: bytes | None) -> str:
    """A self-contained HTML page: the table, the figure (inlined) and the controller versions."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h, _ in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>" for cells in table_rows(rows))
    versions = "".join(
        f"<tr><td>{e(c.id)}</td><td>{e(c.status)}</td><td>{e(c.controller or c.path)}</td>"
        f"<td>{e(c.parent or '-')}</td><td>{e(c.created)}</td><td>{e(c.reason)}</td></tr>"
        for c in profile.controllers)
    a = profile.assistance
    sched = ", ".join(f"{e(k)} {v:g}" for k, v in a.schedule.to_dict().items())
    image = (f'<img alt="progress" src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>exo progress: {e(profile.user_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}</style></head>
<body><h1>Progress of user {e(profile.user_id)}</h1>
<p>Pseudonymous report generated by <code>exo progress</code>: personal data, handle as such.
MAS level (clinician): {e(str(profile.mas_level) if profile.mas_level is not None else "not rated")}.
Assistance level now: {a.level:.2f} (schedule: {sched}).</p>
<h2>Sessions</h2><table><tr>{head}</tr>{body}</table>
{image}
<h2>Controller versions</h2><table><tr><th>id</th><th>status</th><th>controller</th><th>parent</th>
<th>created</th><th>reason</th></tr>{versions}</table>
</body></html>
"""
