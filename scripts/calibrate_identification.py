#!/usr/bin/env python3
"""Measure the identifier's model error on generated subjects and write it to config/identification.yaml.

The 95 % interval ``exo identify`` gives a parameter is its estimate +- 1.96 standard deviations, the
root sum of squares of the data-noise posterior's (``posterior_sd_ratio``) and a *model error*: how far
the fit lands from the truth beyond what the posterior explains (the replay's bias, the rugged
objective at level 3). Both are in generator standard deviations (``0.1 x |nominal|``). This script
measures the model error on subjects whose truth is known, the rows of
``bench/bench_identification.py`` (run with a seed of its own: the subjects the intervals are then
validated on must not be these):

    m^2 = max(0, mean(e^2 - ratio^2))   e = (identified - true) / generator sd

per estimated level and parameter, over the subjects where the parameter is identified (a parameter
not identified gets the generator's interval, whatever m is). A (level, parameter) with fewer than
``--min-count`` identified cases gets the level's value pooled over its parameters.

``--check ROWS`` then reports, on other rows (the validation subjects), the share of identified cases
whose interval holds the truth: with the data-only posterior and with the model error added.

Usage:

    python bench/bench_identification.py --per-level 10 --levels 1 2 3 --twin full --workers 2 --seed 1 \\
        --out bench/results/identification-calibration.json
    python scripts/calibrate_identification.py bench/results/identification-calibration.jsonl \\
        --write config/identification.yaml --check bench/results/identification.jsonl
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def load_rows(path: Path) -> list[dict[str, Any]]:
    """The per-subject rows of a bench_identification run (one JSON object per line)."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{i}: not a JSON row ({exc})") from None
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return rows


def generator_sd(level: int, name: str) -> float:
    """The subject generator's standard deviation of ``name`` at ``level`` (table units; 0 if not free)."""
    from exo.identify.fit import LevelSpace
    from exo.twin.config import load_twin_config

    cfg = load_twin_config().spasticity
    space = LevelSpace.of(cfg.levels[level], cfg.subject_noise_rel_sd, 12.0)
    return float(space.sd[space.names.index(name)]) if name in space.names else 0.0


def cases(rows: list[dict[str, Any]]) -> list[tuple[int, str, float, float, dict[str, Any]]]:
    """(estimated level, parameter, z error, posterior sd ratio, row) of every identified parameter."""
    out = []
    for row in rows:
        level = int(row["estimated_level"])
        for name in row["identified"]:
            sd = generator_sd(level, name)
            if sd <= 0.0:
                continue
            e = (float(row["params"][name]) - float(row["truth"][name])) / sd
            out.append((level, name, e, float(row["posterior_sd_ratio"][name]), row))
    return out


def model_error(rows: list[dict[str, Any]], min_count: int) -> tuple[dict[int, dict[str, float]], dict[str, Any]]:
    """Per level and parameter, the model error in generator sds; and the counts behind it."""
    by: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for level, name, e, ratio, _ in cases(rows):
        by.setdefault((level, name), []).append((e, ratio))
    levels = sorted({lv for lv, _ in by})
    table: dict[int, dict[str, float]] = {}
    counts: dict[str, Any] = {}
    for lv in levels:
        pooled = [x for (l2, _), xs in by.items() if l2 == lv for x in xs]
        pooled_m = math.sqrt(max(0.0, float(np.mean([e * e - r * r for e, r in pooled]))))
        table[lv] = {}
        for (l2, name), xs in sorted(by.items()):
            if l2 != lv:
                continue
            m = math.sqrt(max(0.0, float(np.mean([e * e - r * r for e, r in xs])))) if len(xs) >= min_count else pooled_m
            table[lv][name] = round(m, 3)
            counts[f"level_{lv}.{name}"] = len(xs)
    return table, counts


def coverage(rows: list[dict[str, Any]], table: dict[int, dict[str, float]]) -> dict[int, dict[str, tuple[float, float, int]]]:
    """Per level and parameter: (share covered, data only; share covered, with the model error; cases)."""
    from exo.identify.fit import interval

    out: dict[int, dict[str, list[tuple[bool, bool]]]] = {}
    for level, name, _e, ratio, row in cases(rows):
        sd = generator_sd(level, name)
        value, true = float(row["params"][name]), float(row["truth"][name])
        hits = []
        for m in (0.0, table.get(level, {}).get(name, 0.0)):
            lo, hi = interval(name, value, sd, ratio, m)
            hits.append(lo <= true <= hi)
        out.setdefault(level, {}).setdefault(name, []).append((hits[0], hits[1]))
    return {lv: {n: (float(np.mean([a for a, _ in xs])), float(np.mean([b for _, b in xs])), len(xs))
                 for n, xs in per.items()} for lv, per in out.items()}


def render_yaml(table: dict[int, dict[str, float]], counts: dict[str, Any], source: str) -> str:
    from exo.twin.reflex import NOISY_PARAMETERS

    lines = [
        "# exo identify: the identifier's model error (exo.identify.fit, docs/identification.md section 2).",
        "#",
        "# Per MAS level and parameter, in generator standard deviations (the subject generator's",
        "# 0.1 x |nominal| of config/twin.yaml): how far the fit's estimate lies from the truth beyond what the",
        "# data-noise posterior explains, m^2 = max(0, mean(e^2 - ratio^2)) over generated subjects whose true",
        "# parameters are known. It is added to the posterior's standard deviation in the 95 % intervals",
        "# (root sum of squares). Written by scripts/calibrate_identification.py from:",
        f"#   {source}",
        "identification:",
        "  model_error_sd:",
    ]
    for lv in (1, 2, 3):
        per = table.get(lv, {})
        items = ", ".join(f"{n}: {per[n]}" for n in NOISY_PARAMETERS if n in per)
        cnt = ", ".join(f"{n} {counts[f'level_{lv}.{n}']}" for n in NOISY_PARAMETERS if f"level_{lv}.{n}" in counts)
        lines.append(f"    level_{lv}: {{{items}}}" + (f"   # identified cases: {cnt}" if cnt else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rows", type=Path, help="calibration rows (<out>.jsonl of bench/bench_identification.py)")
    ap.add_argument("--min-count", type=int, default=5, help="identified cases a (level, parameter) needs for its own value")
    ap.add_argument("--write", type=Path, default=None, help="write the table here (e.g. config/identification.yaml)")
    ap.add_argument("--check", type=Path, default=None, help="validation rows: report the intervals' coverage on them")
    ap.add_argument("--json", type=Path, default=None, help="also write the table and coverage as JSON")
    args = ap.parse_args(argv)
    rows = load_rows(args.rows)
    table, counts = model_error(rows, args.min_count)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    seeds = sorted({int(r["subject_seed"]) for r in rows})
    source = (f"{args.rows.name}: {len(rows)} subjects (levels {sorted({r['level'] for r in rows})}, "
              f"{len(seeds)} subject seeds), commit {commit or 'unknown'}, {datetime.date.today().isoformat()}")
    text = render_yaml(table, counts, source)
    print(text)
    report: dict[str, Any] = {"model_error_sd": table, "cases": counts, "source": source}
    for label, path in (("calibration", args.rows), ("check", args.check)):
        if path is None:
            continue
        cov = coverage(load_rows(path), table)
        report[f"coverage_{label}"] = {str(lv): per for lv, per in cov.items()}
        print(f"coverage of the 95 % intervals on {path.name} ({label}): data only -> with the model error (cases)")
        for lv, per in sorted(cov.items()):
            cells = ", ".join(f"{n} {a:.0%} -> {b:.0%} ({k})" for n, (a, b, k) in per.items())
            total = sum(k for _, _, k in per.values())
            a_all = sum(a * k for a, _, k in per.values()) / total
            b_all = sum(b * k for _, b, k in per.values()) / total
            print(f"  level {lv}: all {a_all:.0%} -> {b_all:.0%} ({total}); {cells}")
    if args.write is not None:
        args.write.write_text(text)
        print(f"wrote {args.write}", file=sys.stderr)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
