"""Compare two evaluations (``exo eval`` output folders): per-level % change of the paper's metrics.

``exo compare BASELINE CANDIDATE`` reads each folder's ``summary.json`` (protocol, controller)
and ``trials.csv`` (one row per generated subject), and reports, per spasticity level and
metric, the baseline mean, the candidate mean, the % change ``100 (candidate - baseline) /
baseline`` (negative = the candidate is lower) and a 95 % bootstrap interval of that change
(subjects resampled with replacement within each evaluation, seeded). Means are over the trials
where the metric is finite (settling time is NaN for a trial that never settles; the settled
fraction is reported next to it).

The paper's published numbers (SAC vs PID, the spasticity study, Table/Sec. IV) are kept here
as :data:`PAPER` so that the results page prints them side by side; they are not used to decide
anything.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Metrics compared, in table order: (key in trials.csv, label, unit).
COMPARED: tuple[tuple[str, str, str], ...] = (
    ("peak_torque_nm", "peak interaction torque", "N m"),
    ("rms_torque_nm", "RMS interaction torque until settling", "N m"),
    ("settling_time_s", "settling time", "s"),
    ("final_error_deg", "final error", "deg"),
    ("overshoot_deg", "overshoot", "deg"),
)

#: The paper's SAC-vs-PID results per MAS level 0-3 (None = not reported).
PAPER: dict[str, tuple[float | None, ...]] = {
    "peak_torque_reduction_pct": (23.6, 12.5, 8.8, 11.3),
    "rms_torque_reduction_pct": (35.3, 9.7, 8.1, None),
    "sac_settling_time_s": (0.26, 0.78, 3.77, 7.94),
    "sac_final_error_deg": (1.0, 1.0, 1.0, 11.45),  # "< 1 deg" at levels 0-2
}


class CompareError(ValueError):
    """An evaluation folder is missing, unreadable, or not comparable with the other."""


@dataclass(frozen=True)
class Evaluation:
    """One ``exo eval`` output: its summary document and per-trial rows by level."""

    path: Path
    summary: dict[str, Any]
    trials: dict[int, list[dict[str, float]]]

    @property
    def label(self) -> str:
        c = self.summary.get("controller", {})
        return f"{c.get('name', '?')} ({self.summary.get('twin', '?')} twin)"


def load_evaluation(folder: str | Path) -> Evaluation:
    """Read ``folder/summary.json`` and ``folder/trials.csv``; :class:`CompareError` names what is wrong."""
    path = Path(folder)
    summary_path, trials_path = path / "summary.json", path / "trials.csv"
    for f in (summary_path, trials_path):
        if not f.is_file():
            raise CompareError(f"{path}: no {f.name} (is this an `exo eval --out` folder?)")
    try:
        summary = json.loads(summary_path.read_text())
    except json.JSONDecodeError as exc:
        raise CompareError(f"{summary_path}: not valid JSON ({exc})") from None
    trials: dict[int, list[dict[str, float]]] = {}
    with trials_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"level", *(k for k, _, _ in COMPARED)} - set(reader.fieldnames or [])
        if missing:
            raise CompareError(f"{trials_path}: missing column(s) {', '.join(sorted(missing))}")
        for i, row in enumerate(reader, start=2):
            try:
                level = int(row["level"])
                values = {k: float(row[k]) if row[k] not in ("", None) else math.nan for k, _, _ in COMPARED}
            except ValueError as exc:
                raise CompareError(f"{trials_path}:{i}: {exc}") from None
            values["settled"] = 1.0 if row.get("settled", "True") == "True" else 0.0
            trials.setdefault(level, []).append(values)
    if not trials:
        raise CompareError(f"{trials_path}: no trials")
    return Evaluation(path, summary, trials)


@dataclass(frozen=True)
class MetricChange:
    """Baseline vs candidate on one metric at one level (means over finite trial values)."""

    metric: str
    baseline_mean: float
    candidate_mean: float
    change_pct: float
    ci95_pct: tuple[float, float]
    baseline_n: int
    candidate_n: int


@dataclass
class Comparison:
    """Per-level changes of every compared metric, plus the settled fractions and trial counts."""

    baseline: str
    candidate: str
    levels: dict[int, dict[str, MetricChange]] = field(default_factory=dict)
    settled: dict[int, tuple[float, float]] = field(default_factory=dict)
    trials: dict[int, tuple[int, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "definition": "change_pct = 100 (candidate - baseline) / baseline of the per-level means; "
                          "ci95_pct: 2.5/97.5 percentiles over 2000 bootstrap resamples of the subjects",
            "warnings": self.warnings,
            "paper": {k: list(v) for k, v in PAPER.items()},
            "levels": {
                str(level): {
                    "trials": {"baseline": self.trials[level][0], "candidate": self.trials[level][1]},
                    "settled_fraction": {"baseline": self.settled[level][0], "candidate": self.settled[level][1]},
                    **{m: _finite_dict(c.__dict__) for m, c in changes.items()},
                }
                for level, changes in self.levels.items()
            },
        }


def _finite_dict(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        elif isinstance(v, tuple):
            out[k] = [None if isinstance(x, float) and not math.isfinite(x) else x for x in v]
        else:
            out[k] = v
    return out


def _change(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = float(np.mean(a)), float(np.mean(b))
    return 100.0 * (mb - ma) / abs(ma) if ma != 0 else math.nan


def compare(baseline: Evaluation, candidate: Evaluation, *, resamples: int = 2000, seed: int = 0) -> Comparison:
    """Per-level % changes of the candidate against the baseline (levels both evaluated)."""
    out = Comparison(baseline=f"{baseline.label} <- {baseline.path}", candidate=f"{candidate.label} <- {candidate.path}")
    for key in ("settling_method",):
        a = baseline.summary.get("parameters", {}).get(key)
        b = candidate.summary.get("parameters", {}).get(key)
        if a != b:
            raise CompareError(f"{key} differs ({a!r} vs {b!r}): the metrics are not comparable")
    ta, tb = baseline.summary.get("twin"), candidate.summary.get("twin")
    if ta != tb:
        out.warnings.append(f"different twins: {ta} vs {tb} (a sim-to-sim comparison)")
    common = sorted(set(baseline.trials) & set(candidate.trials))
    if not common:
        raise CompareError("the two evaluations share no spasticity level")
    rng = np.random.default_rng(seed)
    for level in common:
        ra, rb = baseline.trials[level], candidate.trials[level]
        out.trials[level] = (len(ra), len(rb))
        out.settled[level] = (float(np.mean([r["settled"] for r in ra])), float(np.mean([r["settled"] for r in rb])))
        changes: dict[str, MetricChange] = {}
        for key, _, _ in COMPARED:
            a = np.array([r[key] for r in ra])
            b = np.array([r[key] for r in rb])
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            if a.size == 0 or b.size == 0:
                changes[key] = MetricChange(key, float(np.mean(a)) if a.size else math.nan,
                                            float(np.mean(b)) if b.size else math.nan,
                                            math.nan, (math.nan, math.nan), int(a.size), int(b.size))
                continue
            boot = np.array([
                _change(a[rng.integers(0, a.size, a.size)], b[rng.integers(0, b.size, b.size)])
                for _ in range(resamples)
            ])
            boot = boot[np.isfinite(boot)]
            ci = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))) if boot.size else (math.nan,) * 2
            changes[key] = MetricChange(key, float(np.mean(a)), float(np.mean(b)), _change(a, b), ci,  # type: ignore[arg-type]
                                        int(a.size), int(b.size))
        out.levels[level] = changes
    return out


def markdown_table(comp: Comparison, metrics: Sequence[str] | None = None) -> str:
    """The comparison as a Markdown table (one row per level and metric) with the paper's numbers."""
    keys = list(metrics) if metrics else [k for k, _, _ in COMPARED]
    labels = {k: (label, unit) for k, label, unit in COMPARED}
    paper_change = {"peak_torque_nm": PAPER["peak_torque_reduction_pct"], "rms_torque_nm": PAPER["rms_torque_reduction_pct"]}
    lines = ["| level | metric | baseline | candidate | change | 95 % CI | paper (SAC vs PID) |",
             "|---|---|---|---|---|---|---|"]
    for level, changes in comp.levels.items():
        for key in keys:
            c = changes[key]
            label, unit = labels[key]
            paper = ""
            if key in paper_change and paper_change[key][level] is not None:
                paper = f"-{paper_change[key][level]:.1f} %"
            elif key == "settling_time_s":
                paper = f"SAC {PAPER['sac_settling_time_s'][level]:.2f} s"
            elif key == "final_error_deg":
                paper = "SAC < 1 deg" if level < 3 else f"SAC {PAPER['sac_final_error_deg'][3]:.2f} deg"
            lines.append(
                f"| {level} | {label} ({unit}) | {c.baseline_mean:.2f} (n={c.baseline_n}) | "
                f"{c.candidate_mean:.2f} (n={c.candidate_n}) | {c.change_pct:+.1f} % | "
                f"[{c.ci95_pct[0]:+.1f}, {c.ci95_pct[1]:+.1f}] % | {paper} |"
            )
    return "\n".join(lines)


def plot_comparison(comp: Comparison, path: str | Path) -> Path:
    """Grouped bars of the % change per metric and level, with the 95 % intervals and the paper's reductions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k, _, _ in COMPARED[:4]]
    levels = list(comp.levels)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), sharey=False)
    for ax, key in zip(axes, keys, strict=True):
        label = next(lbl for k, lbl, _ in COMPARED if k == key)
        changes = [comp.levels[lv][key] for lv in levels]
        vals = np.array([c.change_pct for c in changes])
        lo = vals - np.array([c.ci95_pct[0] for c in changes])
        hi = np.array([c.ci95_pct[1] for c in changes]) - vals
        ax.bar(levels, vals, yerr=[np.nan_to_num(lo), np.nan_to_num(hi)], capsize=3, color="tab:blue", label="measured")
        paper = {"peak_torque_nm": PAPER["peak_torque_reduction_pct"],
                 "rms_torque_nm": PAPER["rms_torque_reduction_pct"]}.get(key)
        if paper is not None:
            pts = [(lv, -p) for lv, p in zip(levels, [paper[lv] for lv in levels], strict=True) if p is not None]
            if pts:
                ax.scatter(*zip(*pts, strict=True), marker="_", s=400, color="tab:red", zorder=3, label="paper SAC vs PID")
                ax.legend(fontsize=7)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks(levels)
        ax.set_xlabel("MAS level")
        ax.set_title(label, fontsize=9)
        ax.set_ylabel("% change vs baseline")
    fig.suptitle(f"{comp.candidate.split(' <- ')[0]} vs {comp.baseline.split(' <- ')[0]}", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
