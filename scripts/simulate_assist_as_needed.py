"""Assist-as-needed over 10 sessions in the full twin: trainees who get stronger, trainees who fatigue.

For each MAS level and generated subject (seeds ``--seed`` .. ``--seed + subjects - 1``), two trainees
(:mod:`exo.personalize.assist`): one whose voluntary extension strength grows over the sessions
(``--weak`` -> ``--strong``) starting at full assistance, one who fatigues (``--strong`` -> ``--weak``)
starting at ``--fatigue-start-level``. The generic PID at the cap, the safety monitor's core in the
loop, the assist-as-needed rule of :mod:`exo.users.assistance` with the default schedule (or
``--tolerance-deg`` etc.) between sessions. Writes one JSON line per (level, subject, scenario) to
``--out`` (resumable: lines already there are skipped), then ``summary.json``, ``assist_as_needed.png`` and a
markdown table next to it.

    python scripts/simulate_assist_as_needed.py --levels 1 2 --subjects 10 --out runs/assist/sessions.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def run(level: int, seed: int, scenario: str, args: argparse.Namespace) -> dict:
    from exo.personalize.assist import fatiguing, generated_subject, growing, simulate_sessions
    from exo.personalize.evaluation import user_limits
    from exo.personalize.run import generic_choice
    from exo.users.assistance import AssistanceSchedule

    schedule = AssistanceSchedule(error_tolerance_deg=args.tolerance_deg, floor=args.floor)
    if scenario == "growing":
        strengths, start = growing(args.sessions, args.weak, args.strong), 1.0
    else:
        strengths, start = fatiguing(args.sessions, args.strong, args.weak), args.fatigue_start_level
    rows = simulate_sessions(generic_choice(args.cap), generated_subject("full", level, seed), strengths,
                             schedule=schedule, limits=user_limits(), initial_level=start, twin="full",
                             trials_per_session=args.trials, seed=seed)
    return {"level": level, "seed": seed, "scenario": scenario, "sessions": [r.to_dict() for r in rows]}


def summarize(records: list[dict], tolerance: float) -> dict:
    out: dict = {}
    for rec in records:
        key = f"{rec['scenario']}/L{rec['level']}"
        out.setdefault(key, []).append(rec["sessions"])
    summary = {}
    for key, runs in sorted(out.items()):
        levels = np.array([[s["level"] for s in r] + [r[-1]["next_level"]] for r in runs])
        errors = np.array([[s["final_error_deg"] for s in r] for r in runs])
        peaks = np.array([[s["peak_motor_torque_nm"] for s in r] for r in runs])
        summary[key] = {
            "subjects": len(runs),
            "level_mean_by_session": levels.mean(axis=0).round(3).tolist(),
            "achieved_share_by_session": (errors <= tolerance).mean(axis=0).round(3).tolist(),
            "final_error_mean_by_session": errors.mean(axis=0).round(2).tolist(),
            "motor_peak_mean_by_session": peaks.mean(axis=0).round(1).tolist(),
            "raises_with_intervention": int(sum(1 for r in runs for s in r
                                                if s["interventions"] > 0 and s["decision"] == "raise")),
        }
    return summary


def plot(summary: dict, path: Path, tolerance: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, s in summary.items():
        scenario, level = key.split("/")
        style = "-" if scenario == "growing" else "--"
        n = len(s["final_error_mean_by_session"])
        axes[0].plot(range(1, n + 2), s["level_mean_by_session"], style, marker="o", label=f"{scenario} {level}")
        axes[1].plot(range(1, n + 1), s["achieved_share_by_session"], style, marker="o", label=f"{scenario} {level}")
    axes[0].set(xlabel="session (n+1: level set for the next)", ylabel="assistance level (-)",
                title="assistance level, mean over subjects")
    axes[1].set(xlabel="session", ylabel=f"share of trials with final error <= {tolerance:g} deg",
                title="task achieved")
    for a in axes:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--seed", type=int, default=5000, help="first subject seed (held out of everything else)")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--trials", type=int, default=3, help="knee-extension trials per session")
    parser.add_argument("--weak", type=float, default=0.02, help="voluntary strength of the weak end, -")
    parser.add_argument("--strong", type=float, default=0.35, help="voluntary strength of the strong end, -")
    parser.add_argument("--fatigue-start-level", type=float, default=0.4)
    parser.add_argument("--tolerance-deg", type=float, default=8.0)
    parser.add_argument("--floor", type=float, default=0.2)
    parser.add_argument("--cap", type=float, default=70.0, help="torque cap of the generic PID, N m")
    parser.add_argument("--out", type=Path, default=Path("runs/assist/sessions.jsonl"))
    args = parser.parse_args()

    from tqdm import tqdm

    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    records = []
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            rec = json.loads(line)
            records.append(rec)
            done.add((rec["level"], rec["seed"], rec["scenario"]))
    jobs = [(level, args.seed + i, scenario) for level in args.levels for i in range(args.subjects)
            for scenario in ("growing", "fatiguing") if (level, args.seed + i, scenario) not in done]
    t0 = time.monotonic()
    with args.out.open("a") as f:
        for level, seed, scenario in tqdm(jobs, desc="trainees"):
            rec = run(level, seed, scenario, args)
            records.append(rec)
            f.write(json.dumps(rec) + "\n")
            f.flush()
    records = [r for r in records if r["level"] in args.levels]
    summary = summarize(records, args.tolerance_deg)
    (args.out.parent / "summary.json").write_text(json.dumps(summary, indent=2))
    plot(summary, args.out.parent / "assist_as_needed.png", args.tolerance_deg)
    lines = ["| scenario / level | subjects | level s1 -> after s10 | achieved s1 / s10 | motor peak s1 -> s10 (N m) |",
             "|---|---|---|---|---|"]
    for key, s in summary.items():
        lv, ach, pk = s["level_mean_by_session"], s["achieved_share_by_session"], s["motor_peak_mean_by_session"]
        lines.append(f"| {key} | {s['subjects']} | {lv[0]:.2f} -> {lv[-1]:.2f} | {ach[0]:.2f} / {ach[-1]:.2f} | "
                     f"{pk[0]:.1f} -> {pk[-1]:.1f} |")
    (args.out.parent / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"{len(jobs)} trainee run(s) in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
