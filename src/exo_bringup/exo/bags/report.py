"""Write an analysis to disk: ``metrics.json``, CSV tables, PNG figures and one ``report.html``.

``report.html`` is self-contained (figures embedded as base64 PNG, no scripts,
no external files): time series of every session with the safety monitor's
state changes marked, the per-trial table, safety events, latency and sensor
stream tables, and a comparison of the sessions (the first is the baseline).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exo import contract
from exo.bags.analysis import SessionAnalysis
from exo.metrics import METRIC_NAMES
from exo.records import json_safe

#: Metrics compared across sessions, with the direction that is better.
COMPARED = (*METRIC_NAMES, "latency_p95_ms", "deadline_misses", "non_ok_states")


def session_document(a: SessionAnalysis) -> dict[str, Any]:
    """The JSON-ready content of one session's analysis."""
    from dataclasses import asdict

    return {
        "name": a.name, "path": a.path, "metadata": a.metadata, "problems": a.problems,
        "message_count": a.message_count, "duration_s": a.duration_s,
        "summary": a.summary(),
        "trials": [t.row() for t in a.trials],
        "safety_events": [asdict(e) for e in a.safety],
        "command_sources": a.command_sources,
        "latency": asdict(a.latency) if a.latency else None,
        "topics": [asdict(t) for t in a.topics],
    }


def comparison(analyses: Sequence[SessionAnalysis]) -> list[dict[str, Any]]:
    """Per session: its summary and the % change of each compared number vs the first session."""
    rows = []
    base = analyses[0].summary() if analyses else {}
    for a in analyses:
        s = a.summary()
        row: dict[str, Any] = {"session": a.name, **{k: s.get(k, math.nan) for k in COMPARED}}
        for k in COMPARED:
            b, v = base.get(k, math.nan), s.get(k, math.nan)
            ok = isinstance(b, int | float) and isinstance(v, int | float) and math.isfinite(b) and b != 0
            row[f"{k}_change_pct"] = 100.0 * (v - b) / abs(b) if ok and math.isfinite(v) else math.nan
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols: dict[str, None] = {}
    for r in rows:
        for k in r:
            cols.setdefault(k, None)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(cols), restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()})


def plot_session(a: SessionAnalysis, path: Path) -> Path | None:
    """Time series of one session (knee angles, torques) with safety transitions marked; None if empty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = a.series
    if not s:
        return None
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    if "truth_t" in s:
        ax1.plot(s["truth_t"], np.degrees(s["human_knee_rad"]), label="human knee (truth)")
        ax1.plot(s["truth_t"], np.degrees(s["target_rad"]), "k--", lw=1, label="target")
        ax2.plot(s["truth_t"], s["interaction_nm"], label="interaction torque")
    if "joint_t" in s:
        ax1.plot(s["joint_t"], np.degrees(s["exo_knee_rad"]), lw=1, label="exo knee")
    if "command_t" in s:
        ax2.plot(s["command_t"], s["command_nm"], lw=1, label=contract.TORQUE_COMMAND.name)
    for e in a.safety:
        color = "tab:green" if e.state == "OK" else "tab:orange" if e.state == "LIMITING" else "tab:red"
        for ax in (ax1, ax2):
            ax.axvline(e.time_s, color=color, lw=0.8, alpha=0.7)
        ax1.annotate(e.state, (e.time_s, 1.0), xycoords=("data", "axes fraction"), fontsize=7, color=color,
                     rotation=90, va="top")
    ax1.set_ylabel("knee angle (deg)")
    ax2.set_ylabel("torque (N m)")
    ax2.set_xlabel("time (s, header stamps)")
    ax1.legend(fontsize=8, loc="upper right")
    ax2.legend(fontsize=8, loc="upper right")
    ax1.set_title(f"{a.name}: time series (vertical lines: safety state changes)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_latency(a: SessionAnalysis, path: Path) -> Path | None:
    """Histogram of the control loop's latency with the deadline; None without latency data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if a.latency is None:
        return None
    lat = a.latency
    fig, ax = plt.subplots(figsize=(6, 3))
    edges = np.array(lat.hist_edges_ms)
    ax.stairs(lat.hist_counts, edges, fill=True)
    ax.axvline(lat.deadline_ms, color="tab:red", lw=1, label=f"deadline {lat.deadline_ms:.0f} ms")
    ax.set_yscale("log")
    ax.set_xlabel("sensor sample -> command (ms; last bin: and later)")
    ax.set_ylabel("commands")
    ax.set_title(f"{a.name}: loop latency (p95 {lat.p95_ms:.2f} ms, {lat.misses} misses)")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _table(rows: list[dict[str, Any]], cols: Sequence[str] | None = None) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    cols = list(cols or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path: Path | None) -> str:
    if path is None:
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def write_report(analyses: Sequence[SessionAnalysis], out_dir: Path | str) -> dict[str, Path]:
    """Write metrics.json, trials.csv, safety_events.csv, topics.csv, latency.csv, comparison.csv,
    figures/*.png and report.html into ``out_dir``; returns the main paths."""
    from dataclasses import asdict

    out = Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    docs = [session_document(a) for a in analyses]
    comp = comparison(analyses)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(json_safe({"sessions": docs, "comparison": comp}), indent=2) + "\n")
    _write_csv(out / "trials.csv", [{"session": a.name, **t.row()} for a in analyses for t in a.trials])
    _write_csv(out / "safety_events.csv", [{"session": a.name, **asdict(e)} for a in analyses for e in a.safety])
    _write_csv(out / "topics.csv", [{"session": a.name, **asdict(t)} for a in analyses for t in a.topics])
    _write_csv(out / "latency.csv", [
        {"session": a.name, "bin_low_ms": lo, "bin_high_ms": hi, "count": c}
        for a in analyses if a.latency
        for lo, hi, c in zip(a.latency.hist_edges_ms[:-1], a.latency.hist_edges_ms[1:], a.latency.hist_counts,
                             strict=True)
    ])
    _write_csv(out / "comparison.csv", comp)

    parts = ["<h1>exo bag report</h1>"]
    if len(analyses) > 1:
        parts.append("<h2>Comparison across sessions</h2><p>Means over each session's scored trials; "
                     "% change relative to the first session.</p>")
        parts.append(_table(comp, ["session", *COMPARED, *(f"{k}_change_pct" for k in COMPARED)]))
    for i, a in enumerate(analyses):
        series_png = plot_session(a, figures / f"{i:02d}_{a.name}_timeseries.png")
        latency_png = plot_latency(a, figures / f"{i:02d}_{a.name}_latency.png")
        meta = ", ".join(f"{k}={v}" for k, v in a.metadata.items() if v)
        parts.append(f"<h2>{html.escape(a.name)}</h2><p><code>{html.escape(a.path)}</code><br>"
                     f"{html.escape(meta)}<br>{a.message_count} messages over {a.duration_s:.2f} s (wall)</p>")
        if a.problems:
            parts.append("<h3>Problems reading the bag</h3><ul>"
                         + "".join(f"<li>{html.escape(p)}</li>" for p in a.problems) + "</ul>")
        parts.append(_img(series_png))
        parts.append("<h3>Trials</h3>" + _table([t.row() for t in a.trials]))
        parts.append("<h3>Safety events</h3>" + _table([asdict(e) for e in a.safety]))
        parts.append("<p>Command sources: " + html.escape(
            ", ".join(f"{k}: {v}" for k, v in sorted(a.command_sources.items())) or "none") + "</p>")
        if a.latency:
            lat = asdict(a.latency)
            parts.append("<h3>Control loop latency</h3>" + _img(latency_png) + _table(
                [{k: v for k, v in lat.items() if not k.startswith("hist")}]))
        parts.append("<h3>Topics</h3>" + _table([asdict(t) for t in a.topics]))
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "font-size:12px;margin:0.5em 0}td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}"
             "img{max-width:100%}")
    report = out / "report.html"
    report.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>exo bag report</title>"
                      f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    return {"metrics": metrics_path, "report": report, "trials": out / "trials.csv"}
