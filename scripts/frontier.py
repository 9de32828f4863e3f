"""The hand-tuned frontier learned controllers must beat, on the full twin through the safety monitor.

A learned controller is worth deploying only where it beats every controller a careful engineer would
tune by hand. This script measures that yardstick per MAS level and tests the committed policies
against it (definitions and the target test: :mod:`exo.frontier`).

Configurations (every trial through :func:`exo.personalize.evaluation.run_user_trial`: the full MyoLeg
twin, the safety monitor's core with ``config/safety.yaml``'s limits and ``user_torque_cap_nm`` = the
configuration's cap):

- ``pid@C``: the PID of ``config/controllers.yaml`` with ``torque_limit_nm`` = C, for C in ``--caps-nm``
  (default 60, 65, ..., 100 N m);
- ``reference_pid@C/vV``: the reflex-aware reference baseline (the same PID gains tracking a
  minimum-jerk reference of peak speed V rad/s), for every cap C and every V in ``--velocities-rad-s``;
  with ``--strap-play-rad P ...`` (P > 0) also ``reference_pid@C/vV/pP``, its exo goal P rad past the
  target (the straps' play under load, docs/results.md section 0.1.2);
- ``<policy>@C``: each committed learned policy (``--policies``, folders under ``models/``), run by the
  ``sac`` controller (a residual policy's card brings its base PID), with its output clip and the
  monitor's cap at C for C in ``--policy-caps-nm``. Default 100 N m, the motor's limit: what
  docs/results.md evaluated them with (``exo eval``, no user cap); and 70 N m, ``config/safety.yaml``'s
  default user cap.

Subjects (paired: every configuration runs on the same subject and start): subject ``i`` of level ``L``
is ``exo eval``'s held-out trial ``i`` (:func:`exo.evaluate.subject_seed` of master seed ``--seed``,
default 0, the seed of every 250-subject table in docs/results.md; training evaluation used 1000 and
checkpoint selection 2000), with the same start-angle perturbation.

Outputs, next to ``--out``:

- ``--out`` (default ``runs/frontier/trials.jsonl``): one JSON line per (configuration, level, subject),
  flushed per line; a run cut off resumes (lines already there are skipped);
- ``summary.json`` and ``summary.md``: per level the means of every configuration, the frontiers on
  (peak, final error) and (RMS until settling, final error), the reference speed chosen per level
  (the largest dominated area of its cap sweep), and per learned policy the target test with 95 %
  paired bootstrap intervals (``--resamples``, default 2000), the verdict, and whether a reflex-aware
  reference configuration already dominates the policy;
- ``frontier_L<level>.png``: (peak, final error) and (RMS, final error) of every configuration, the
  frontiers, the policies with 95 % intervals.

Usage::

    python scripts/frontier.py --workers 2                                   # 250 subjects x levels 0-3
    python scripts/frontier.py --levels 1 --subjects 3 --out /tmp/frontier_smoke/trials.jsonl
    python scripts/frontier.py --quick                                       # smaller sweep, 3 subjects, level 1
    python scripts/frontier.py --summary-only                                # re-summarise the JSONL

A full-twin trial costs about 0.14 s of CPU (PID, reference PID; learned policies 0.16 s). The default sweep is
51 configurations x 250 subjects x 4 levels = 51,000 trials: about 2 h of CPU, 1 h with ``--workers 2`` on two
free cores. The summary (bootstrap) takes a few seconds.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CAPS_NM = tuple(float(c) for c in range(60, 101, 5))
DEFAULT_VELOCITIES_RAD_S = (0.3, 0.5, 0.8, 1.2)
DEFAULT_POLICIES = ("sac-reduced", "sac-residual-peak-reduced", "sac-residual-limited-reduced")
DEFAULT_POLICY_CAPS_NM = (100.0, 70.0)
DEFAULT_OUT = Path("runs/frontier/trials.jsonl")
#: --quick: a smaller sweep on a few subjects of one level.
QUICK = {"levels": [1], "subjects": 3, "caps_nm": [60.0, 80.0, 100.0], "velocities_rad_s": [0.5, 1.2],
         "resamples": 200}
#: Per-trial numbers kept in the JSONL (metrics of exo.metrics, monitor counts of run_user_trial).
TRIAL_FIELDS = ("peak_torque_nm", "rms_torque_nm", "final_error_deg", "settling_time_s", "overshoot_deg",
                "settled")
SUMMARY_METRICS = ("peak_torque_nm", "rms_torque_nm", "final_error_deg", "intervention_steps", "limited_steps")
HAND_TUNED = ("pid", "reference_pid")


@dataclass(frozen=True)
class Config:
    """One configuration of the sweep.

    Attributes:
        name: unique label, e.g. ``pid@70``, ``reference_pid@70/v0.8``, ``sac-reduced@100``.
        kind: "pid", "reference_pid" or "learned".
        controller: registry name of :mod:`exo.control`.
        params: the controller's keyword parameters as recorded (a policy as given, not resolved).
        cap_nm: the controller's output clip and the safety monitor's user torque cap, N m.
        peak_velocity_rad_s: reference speed (reference_pid only).
        strap_play_rad: how far past the target the exo's goal lies (reference_pid only), rad.
        policy: the policy as given (learned only): a folder name under models/ or a path.
    """

    name: str
    kind: str
    controller: str
    params: dict[str, Any] = field(hash=False)
    cap_nm: float
    peak_velocity_rad_s: float | None = None
    policy: str | None = None
    strap_play_rad: float = 0.0


def build_configs(caps_nm: Sequence[float], velocities_rad_s: Sequence[float], policies: Sequence[str],
                  policy_caps_nm: Sequence[float], strap_play_rad: Sequence[float] = (0.0,)) -> list[Config]:
    """Every configuration of the sweep (module docstring)."""
    from exo.control import load_controller_params

    out: list[Config] = []
    pid = load_controller_params("pid")
    ref = load_controller_params("reference_pid")
    for cap in caps_nm:
        out.append(Config(f"pid@{cap:g}", "pid", "pid", {**pid, "torque_limit_nm": float(cap)}, float(cap)))
    for v in velocities_rad_s:
        for play in strap_play_rad:
            for cap in caps_nm:
                params = {**ref, "torque_limit_nm": float(cap), "peak_velocity_rad_s": float(v),
                          "strap_play_rad": float(play)}
                name = f"reference_pid@{cap:g}/v{v:g}" + (f"/p{play:g}" if play > 0.0 else "")
                out.append(Config(name, "reference_pid", "reference_pid", params, float(cap),
                                  peak_velocity_rad_s=float(v), strap_play_rad=float(play)))
    for policy in policies:
        for cap in policy_caps_nm:
            out.append(Config(f"{Path(policy).name}@{cap:g}", "learned", "sac",
                              {"policy": policy, "torque_limit_nm": float(cap)}, float(cap), policy=policy))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise SystemExit(f"duplicate configuration names: {sorted({n for n in names if names.count(n) > 1})}")
    return out


def resolve_policy(policy: str) -> Path:
    """A policy folder: ``policy`` as a path if it exists, else a folder of that name under models/."""
    from exo.paths import models_dir, repo_root

    candidates = [Path(policy), models_dir() / policy]
    root = repo_root()
    if root is not None:
        candidates.append(root / "models" / policy)
    for path in candidates:
        if path.is_dir():
            return path
    raise SystemExit(f"policy {policy!r} not found (looked at {', '.join(map(str, candidates))})")


# ---------------------------------------------------------------------------------------------- trials


@functools.lru_cache(maxsize=256)
def held_out_subject(twin: str, level: int, trial: int, master_seed: int) -> tuple[Any, int]:
    """``exo eval``'s subject of (master seed, level, trial) and the env seed of that trial.

    ``exo eval`` resets the env with ``seed = subject_seed(master_seed, level, trial)``; the env draws the
    subject's seed as the first number of that seed's generator, then the start-angle perturbation.
    Passing the same seed to :func:`run_user_trial` with this subject reproduces both.
    """
    from exo.evaluate import subject_seed
    from exo.personalize.assist import generated_subject

    env_seed = subject_seed(master_seed, level, trial)
    inner = int(np.random.default_rng(env_seed).integers(0, 2**63 - 1))  # as KneeExtensionEnv.reset draws it
    return generated_subject(twin, level, inner), env_seed


@functools.lru_cache(maxsize=1)
def _base_limits() -> Any:
    from exo.personalize.evaluation import user_limits

    return user_limits()


def run_one(task: tuple[Config, str, int, int, int]) -> dict[str, Any]:
    """One trial of a configuration on one subject: the JSONL line."""
    from exo.personalize.evaluation import ControllerChoice, run_user_trial

    config, twin, level, trial, master_seed = task
    subject, env_seed = held_out_subject(twin, level, trial, master_seed)
    params = dict(config.params)
    if config.policy is not None:
        params["policy"] = str(resolve_policy(config.policy))
    limits = replace(_base_limits(), user_torque_cap_nm=config.cap_nm)
    start = time.process_time()
    result = run_user_trial(ControllerChoice(config.controller, params), subject, limits, twin, seed=env_seed)
    cpu_s = time.process_time() - start
    m = result.metrics
    line: dict[str, Any] = {"config": config.name, "kind": config.kind, "twin": twin, "seed": master_seed,
                            "level": level, "subject": trial, "env_seed": env_seed, "cap_nm": config.cap_nm,
                            "peak_velocity_rad_s": config.peak_velocity_rad_s, "policy": config.policy,
                            "params": config.params}
    for name in TRIAL_FIELDS:
        value = getattr(m, name)
        line[name] = bool(value) if isinstance(value, bool) else _finite(value)
    line.update(intervention_steps=result.intervention_steps, limited_steps=result.limited_steps,
                steps=result.steps, peak_motor_torque_nm=_finite(result.peak_motor_torque_nm),
                peak_request_nm=_finite(result.peak_request_nm), cpu_s=round(cpu_s, 4))
    return line


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _key(line: dict[str, Any]) -> tuple[str, str, int, int, int]:
    return (line["config"], line["twin"], int(line["seed"]), int(line["level"]), int(line["subject"]))


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path``. A torn last line (a run killed mid-write) is cut off the file."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    chunks = raw.split(b"\n")
    lines: list[dict[str, Any]] = []
    good_end = 0
    for k, chunk in enumerate(chunks):
        last = k == len(chunks) - 1
        if not chunk.strip():
            good_end += len(chunk) + (0 if last else 1)
            continue
        try:
            if last:
                raise json.JSONDecodeError("no newline", "", 0)
            lines.append(json.loads(chunk))
        except json.JSONDecodeError:
            if not last:
                raise SystemExit(f"{path}: line {k + 1} is not JSON; fix or move the file") from None
            print(f"{path}: dropping a torn last line ({len(chunk)} bytes)", file=sys.stderr)
            with path.open("r+b") as f:
                f.truncate(good_end)
            break
        good_end += len(chunk) + 1
    return lines


def run_trials(configs: Sequence[Config], twin: str, levels: Sequence[int], subjects: int, master_seed: int,
               out: Path, workers: int) -> None:
    """Run every missing (configuration, level, subject) trial, appending its line to ``out``."""
    from tqdm import tqdm

    out.parent.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, str, int, int, int], dict[str, Any]] = {_key(x): x for x in read_lines(out)}
    by_name = {c.name: c for c in configs}
    for key, line in done.items():
        config = by_name.get(key[0])
        if config is not None and line.get("params") != json.loads(json.dumps(config.params)):
            raise SystemExit(f"{out}: {key[0]} was run with other parameters ({line.get('params')}); "
                             "use another --out")
    tasks = [(c, twin, level, i, master_seed) for level in levels for i in range(subjects) for c in configs
             if (c.name, twin, master_seed, level, i) not in done]
    print(f"{len(tasks)} trials to run ({len(done)} lines already in {out})", file=sys.stderr)
    if not tasks:
        return
    with out.open("a") as f, tqdm(total=len(tasks), unit="trial", file=sys.stderr) as bar:

        def write(line: dict[str, Any]) -> None:
            f.write(json.dumps(line) + "\n")
            f.flush()
            bar.update()

        if workers <= 1:
            for task in tasks:
                write(run_one(task))
        else:
            # spawn: workers start clean (no inherited MuJoCo state), as exo.evaluate does
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for line in pool.imap_unordered(run_one, tasks, chunksize=1):
                    write(line)


# --------------------------------------------------------------------------------------------- summary


def _arrays(lines: Iterable[dict[str, Any]], names: Sequence[str], subjects: Sequence[int]) -> dict[str, np.ndarray]:
    """metric -> array (n_configs, n_subjects) in the order of ``names`` and ``subjects`` (NaN for None)."""
    row = {n: i for i, n in enumerate(names)}
    col = {s: j for j, s in enumerate(subjects)}
    out = {k: np.full((len(names), len(subjects)), np.nan) for k in SUMMARY_METRICS}
    for line in lines:
        i, j = row.get(line["config"]), col.get(line["subject"])
        if i is None or j is None:
            continue
        for k in SUMMARY_METRICS:
            value = line.get(k)
            out[k][i, j] = np.nan if value is None else float(value)
    return out


def summarize(lines: list[dict[str, Any]], configs: Sequence[Config], twin: str, master_seed: int,
              levels: Sequence[int], subjects: int, resamples: int, bootstrap_seed: int) -> dict[str, Any]:
    """Means, frontiers and the target test per level (module docstring; :mod:`exo.frontier`)."""
    from exo.frontier import (
        bootstrap_margins,
        dominators,
        hypervolume,
        judge,
        resample_weights,
        target_for_level,
        weighted_means,
    )

    names = [c.name for c in configs]
    by_name = {c.name: c for c in configs}
    if not any(c.kind in HAND_TUNED for c in configs):
        raise SystemExit("no hand-tuned configuration: give --caps-nm")
    doc: dict[str, Any] = {"twin": twin, "seed": master_seed, "subjects_requested": subjects,
                           "resamples": resamples, "bootstrap_seed": bootstrap_seed, "confidence": 0.95,
                           "configurations": {c.name: {"kind": c.kind, "cap_nm": c.cap_nm,
                                                       "peak_velocity_rad_s": c.peak_velocity_rad_s,
                                                       "policy": c.policy} for c in configs},
                           "cpu_s_per_trial": _cpu_by_kind(lines, by_name), "levels": {}}
    for level in levels:
        mine = [x for x in lines if x["twin"] == twin and int(x["seed"]) == master_seed and x["level"] == level
                and x["subject"] < subjects and x["config"] in by_name]
        have: dict[int, set[str]] = {}
        for x in mine:
            have.setdefault(x["subject"], set()).add(x["config"])
        complete = sorted(s for s, got in have.items() if got >= set(names))
        if not complete:
            doc["levels"][str(level)] = {"subjects": 0}
            continue
        a = _arrays(mine, names, complete)
        complete_set = set(complete)
        means = {k: np.nanmean(v, axis=1) for k, v in a.items()}
        hand = [i for i, c in enumerate(configs) if c.kind in HAND_TUNED]
        hand_names = [names[i] for i in hand]
        pid = [i for i in hand if configs[i].kind == "pid"]
        ref = [i for i in hand if configs[i].kind == "reference_pid"]
        w = resample_weights(len(complete), resamples, bootstrap_seed + level)

        # reference speed per level: the largest area its cap sweep dominates on (peak, final error)
        ref_point = (1.1 * float(np.nanmax(means["peak_torque_nm"][hand])),
                     1.1 * float(np.nanmax(means["final_error_deg"][hand])))
        areas: dict[str, float] = {}
        for v in sorted({configs[i].peak_velocity_rad_s for i in ref}):
            idx = [i for i in ref if configs[i].peak_velocity_rad_s == v]
            areas[f"{v:g}"] = hypervolume(means["peak_torque_nm"][idx], means["final_error_deg"][idx], *ref_point)
        chosen_v = max(areas, key=areas.__getitem__) if areas else None
        level_doc: dict[str, Any] = {
            "subjects": len(complete),
            "means": {n: {k: _finite(float(means[k][i])) for k in SUMMARY_METRICS} for i, n in enumerate(names)},
            "settled_fraction": {n: _finite(float(np.mean([bool(x.get("settled")) for x in mine
                                                           if x["config"] == n and x["subject"] in complete_set])))
                                 for n in names},
            "frontier_peak": _front(means, names, hand, "peak_torque_nm"),
            "frontier_rms": _front(means, names, hand, "rms_torque_nm"),
            "frontier_peak_pid": _front(means, names, pid, "peak_torque_nm"),
            "frontier_rms_pid": _front(means, names, pid, "rms_torque_nm"),
            "frontier_peak_reference": _front(means, names, ref, "peak_torque_nm") if ref else [],
            "frontier_rms_reference": _front(means, names, ref, "rms_torque_nm") if ref else [],
            "reference_velocity_rad_s": float(chosen_v) if chosen_v is not None else None,
            "reference_hypervolume": areas,
            "hypervolume_reference_point": list(ref_point),
            "target": asdict(target_for_level(level)),
            "policies": {},
        }
        target = target_for_level(level)
        for i, c in enumerate(configs):
            if c.kind != "learned":
                continue
            entry: dict[str, Any] = {}
            for x, tag in (("peak_torque_nm", "peak"), ("rms_torque_nm", "rms")):
                bm = bootstrap_margins(a[x][hand], a["final_error_deg"][hand], a[x][i], a["final_error_deg"][i],
                                       resamples=resamples, seed=bootstrap_seed + level)
                entry[tag] = {"frontier_torque_at_policy_error_nm": _finite(bm.point.frontier_x_at_policy_y),
                              "torque_where": bm.point.x_where,
                              "torque_margin": _interval(bm.x_margin),
                              "frontier_error_at_policy_torque_deg": _finite(bm.point.frontier_y_at_policy_x),
                              "error_where": bm.point.y_where,
                              "error_margin_deg": _interval(bm.y_margin_deg),
                              "torque_outside_fraction": bm.x_outside_fraction,
                              "error_outside_fraction": bm.y_outside_fraction}
                if tag == "peak":
                    v = judge(bm, target)
                    entry["verdict"] = {"inside": v.inside, "peak_test": v.peak_test, "error_test": v.error_test,
                                        "reason": v.reason}
            for k in ("peak_torque_nm", "rms_torque_nm", "final_error_deg"):
                lo, hi = np.nanpercentile(weighted_means(a[k][i], w), [2.5, 97.5])
                entry[f"{k}_ci"] = [float(lo), float(hi)]
            px, py = float(means["peak_torque_nm"][i]), float(means["final_error_deg"][i])
            for tag, idx in (("reference", ref), ("pid", pid)):
                dom = dominators(means["peak_torque_nm"][idx], means["final_error_deg"][idx], px, py)
                entry[f"dominated_by_{tag}"] = [names[idx[k]] for k in dom]
            level_doc["policies"][c.name] = entry
        level_doc["hand_tuned"] = hand_names
        doc["levels"][str(level)] = level_doc
    return doc


def _front(means: dict[str, np.ndarray], names: Sequence[str], idx: Sequence[int], x: str) -> list[str]:
    """Names of the Pareto set of configurations ``idx`` on (mean ``x``, mean final error), by ``x`` ascending."""
    from exo.frontier import pareto_indices

    idx = list(idx)
    order = pareto_indices(means[x][idx], means["final_error_deg"][idx])
    return [names[idx[k]] for k in order]


def _xy(ld: dict[str, Any], names: Sequence[str], metric: str) -> tuple[list[float], list[float]]:
    """(mean ``metric``, mean final error) of ``names`` in one level's summary, skipping missing values."""
    pts = [(ld["means"][n][metric], ld["means"][n]["final_error_deg"]) for n in names]
    pts = [(a, b) for a, b in pts if a is not None and b is not None]
    return [a for a, _ in pts], [b for _, b in pts]


def _interval(iv: Any) -> dict[str, float | None]:
    return {k: _finite(v) for k, v in iv.to_dict().items()}


def _cpu_by_kind(lines: list[dict[str, Any]], by_name: dict[str, Config]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind in ("pid", "reference_pid", "learned"):
        cpu = [x["cpu_s"] for x in lines if x.get("kind") == kind and x["config"] in by_name and "cpu_s" in x]
        if cpu:
            out[kind] = {"mean": float(np.mean(cpu)), "median": float(np.median(cpu)), "trials": len(cpu)}
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(doc: dict[str, Any]) -> str:
    """``summary.md``: tables a results document can paste."""
    confs = doc["configurations"]
    learned = [n for n, c in confs.items() if c["kind"] == "learned"]
    caps = sorted({c["cap_nm"] for c in confs.values() if c["kind"] == "learned"})
    lines = [
        f"# Hand-tuned frontier vs learned policies ({doc['twin']} twin, safety monitor in the loop)",
        "",
        f"Subjects: `exo eval`'s held-out subjects (master seed {doc['seed']}), the same subject and start for "
        "every configuration. Monitor: `config/safety.yaml` with `user_torque_cap_nm` = the configuration's cap "
        f"(learned policies at {', '.join(f'{c:g}' for c in caps)} N m; output clip = cap). Intervals: 95 % "
        f"percentile, {doc['resamples']} paired bootstrap resamples of subjects (the frontier recomputed on each). "
        "Frontier: Pareto set of all hand-tuned configurations (PID and reference PID at every cap and speed), "
        "piecewise-linear between its points, nearest end outside its range (marked *below*/*above*).",
        "",
        "Target (inside): peak margin at the policy's own final error >= 10 % with CI > 0, **or** final-error "
        "margin at its own peak >= 1 deg (2 deg at level 3) with CI > 0.",
        "",
    ]
    cpu = doc.get("cpu_s_per_trial") or {}
    if cpu:
        lines += ["CPU per trial: " + ", ".join(f"{k} {v['mean']:.3f} s ({v['trials']} trials)"
                                                 for k, v in cpu.items()), ""]
    verdicts: list[str] = []
    dominated: list[str] = []
    for level, ld in doc["levels"].items():
        lines.append(f"## Level {level} ({ld.get('subjects', 0)} subjects)")
        lines.append("")
        if not ld.get("subjects"):
            lines += ["No complete subject yet.", ""]
            continue
        v = ld["reference_velocity_rad_s"]
        areas = ", ".join(f"{k}: {a:.0f}" for k, a in ld["reference_hypervolume"].items())
        if v is not None:
            lines += [f"Reference speed chosen for this level: **{v:g} rad/s** (area dominated on (peak, final "
                      f"error), N m deg: {areas}).", ""]
        fp, fr = set(ld["frontier_peak"]), set(ld["frontier_rms"])
        lines += ["| configuration | peak (N m) | RMS until settling (N m) | final error (deg) | settled | "
                  "interventions (steps) | limited (steps) | on frontier |", "|---|---|---|---|---|---|---|---|"]
        shown = [n for n, c in confs.items() if c["kind"] == "pid"]
        shown += [n for n, c in confs.items() if c["kind"] == "reference_pid"
                  and (c["peak_velocity_rad_s"] == v or n in fp or n in fr)]
        shown += learned
        for n in shown:
            m = ld["means"][n]
            on = "/".join(t for t, s in (("peak", fp), ("RMS", fr)) if n in s) or ""
            name = f"**{n}**" if confs[n]["kind"] == "learned" else n
            lines.append(f"| {name} | {_fmt(m['peak_torque_nm'])} | {_fmt(m['rms_torque_nm'])} | "
                         f"{_fmt(m['final_error_deg'])} | {100 * (ld['settled_fraction'][n] or 0):.0f} % | "
                         f"{_fmt(m['intervention_steps'], 1)} | {_fmt(m['limited_steps'], 1)} | {on} |")
        lines += ["", f"Frontier on (peak, final error): {', '.join(ld['frontier_peak'])}.",
                  f"Frontier on (RMS, final error): {', '.join(ld['frontier_rms'])}.", ""]
        lines += ["| policy | peak (N m) | final error (deg) | frontier peak at its error (N m) | peak margin [95 % CI] | "
                  "frontier error at its peak (deg) | error margin, deg [95 % CI] | verdict | dominated by a reference "
                  "configuration |", "|---|---|---|---|---|---|---|---|---|"]
        for n in learned:
            e = ld["policies"][n]
            p, m = e["peak"], ld["means"][n]
            tm, em = p["torque_margin"], p["error_margin_deg"]
            where_t = "" if p["torque_where"] == "inside" else f" *{p['torque_where']}*"
            where_e = "" if p["error_where"] == "inside" else f" *{p['error_where']}*"
            dom = e["dominated_by_reference"]
            inside = e["verdict"]["inside"]
            lines.append(
                f"| {n} | {_fmt(m['peak_torque_nm'])} | {_fmt(m['final_error_deg'])} | "
                f"{_fmt(p['frontier_torque_at_policy_error_nm'])}{where_t} | "
                f"{_pct(tm['value'])} [{_pct(tm['low'])}, {_pct(tm['high'])}] | "
                f"{_fmt(p['frontier_error_at_policy_torque_deg'])}{where_e} | "
                f"{_fmt(em['value'])} [{_fmt(em['low'])}, {_fmt(em['high'])}] | "
                f"{'**inside**' if inside else 'not inside'} | "
                f"{'**yes**: ' + ', '.join(dom[:3]) + (f' (+{len(dom) - 3})' if len(dom) > 3 else '') if dom else 'no'} |")
            verdicts.append(f"level {level} {n}: {'inside' if inside else 'not inside'}")
            if dom:
                dominated.append(f"{n} at level {level}")
        lines += ["", "RMS until settling vs the (RMS, final error) frontier (for information; the target is on peak):", "",
                  "| policy | RMS (N m) | frontier RMS at its error (N m) | RMS margin [95 % CI] | error margin at its RMS, "
                  "deg [95 % CI] |", "|---|---|---|---|---|"]
        for n in learned:
            r, m = ld["policies"][n]["rms"], ld["means"][n]
            tm, em = r["torque_margin"], r["error_margin_deg"]
            where_t = "" if r["torque_where"] == "inside" else f" *{r['torque_where']}*"
            lines.append(f"| {n} | {_fmt(m['rms_torque_nm'])} | {_fmt(r['frontier_torque_at_policy_error_nm'])}{where_t} | "
                         f"{_pct(tm['value'])} [{_pct(tm['low'])}, {_pct(tm['high'])}] | "
                         f"{_fmt(em['value'])} [{_fmt(em['low'])}, {_fmt(em['high'])}] |")
        lines.append("")
    inside_any = [x for x in verdicts if x.endswith(": inside")]
    lines += ["## Verdict", "",
              f"Learned policies strictly inside the frontier: {'; '.join(inside_any) if inside_any else 'none'}.", "",
              ("**The reflex-aware reference baseline already dominates (lower mean peak and lower mean final error)**: "
               + "; ".join(dominated) + ".") if dominated else
              "No reflex-aware reference configuration dominates a learned policy on (mean peak, mean final error).", ""]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f} %"


def plot(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """``frontier_L<level>.png`` per level: (peak, final error) and (RMS, final error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confs = doc["configurations"]
    paths = []
    for level, ld in doc["levels"].items():
        if not ld.get("subjects"):
            continue
        fig, axes = plt.subplots(1, 2, figsize=(13, 7))
        speeds = sorted({c["peak_velocity_rad_s"] for c in confs.values() if c["kind"] == "reference_pid"})
        cmap = plt.get_cmap("viridis")
        for ax, x, tag in ((axes[0], "peak_torque_nm", "peak"), (axes[1], "rms_torque_nm", "rms")):
            pid = [n for n, c in confs.items() if c["kind"] == "pid"]
            px, py = _xy(ld, pid, x)
            ax.scatter(px, py, marker="o", color="tab:red", label="PID (caps)", zorder=3)
            for n in pid:
                a, b = ld["means"][n][x], ld["means"][n]["final_error_deg"]
                if a is not None and b is not None:
                    ax.annotate(f"{confs[n]['cap_nm']:g}", (a, b), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
            for k, v in enumerate(speeds):
                names = [n for n, c in confs.items() if c["kind"] == "reference_pid" and c["peak_velocity_rad_s"] == v]
                rx, ry = _xy(ld, names, x)
                chosen = v == ld["reference_velocity_rad_s"]
                ax.scatter(rx, ry, marker="s", s=30 if chosen else 14, color=cmap(k / max(1, len(speeds) - 1)),
                           edgecolor="k" if chosen else "none",
                           label=f"reference {v:g} rad/s" + (" (chosen)" if chosen else ""), zorder=3)
            for key, style, lw, label in ((f"frontier_{tag}", "-", 5.0, "frontier (all hand-tuned)"),
                                          (f"frontier_{tag}_pid", "--", 1.2, "PID frontier"),
                                          (f"frontier_{tag}_reference", ":", 1.5, "reference frontier")):
                fx, fy = _xy(ld, ld.get(key, []), x)
                if fx:
                    color = {"-": "0.75", "--": "tab:red", ":": "tab:blue"}[style]
                    ax.plot(fx, fy, style, color=color, lw=lw, label=label, zorder=2)
            for n, e in ld["policies"].items():
                m = ld["means"][n]
                if m[x] is None or m["final_error_deg"] is None:
                    continue
                lo_x, hi_x = e[f"{x}_ci"]
                lo_y, hi_y = e["final_error_deg_ci"]
                ax.errorbar(m[x], m["final_error_deg"], xerr=[[max(0.0, m[x] - lo_x)], [max(0.0, hi_x - m[x])]],
                            yerr=[[max(0.0, m["final_error_deg"] - lo_y)], [max(0.0, hi_y - m["final_error_deg"])]], fmt="D", ms=7,
                            capsize=3, label=f"{n} ({'inside' if e['verdict']['inside'] else 'not inside'})", zorder=4)
            ax.set_xlabel("mean peak interaction torque (N m)" if tag == "peak" else
                          "mean RMS interaction torque until settling (N m)")
            ax.set_ylabel("mean final error (deg, log scale)")
            ax.set_yscale("log")  # failed trials (monitor fallback) end tens of degrees short
            ax.grid(alpha=0.3, which="both")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=4)
        fig.suptitle(f"Level {level}: hand-tuned frontier vs learned policies ({doc['twin']} twin, safety monitor, "
                     f"{ld['subjects']} subjects, 95 % CI)")
        fig.tight_layout(rect=(0, 0.16, 1, 1))
        path = out_dir / f"frontier_L{level}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3], choices=range(4))
    p.add_argument("--subjects", type=int, default=250, help="subjects per level (exo eval trials 0..N-1)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSONL of the trials; summaries and plots beside it")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--twin", default="full", choices=("full", "reduced"))
    p.add_argument("--seed", type=int, default=0, help="exo eval's master seed of the held-out subjects")
    p.add_argument("--caps-nm", type=float, nargs="+", default=list(DEFAULT_CAPS_NM))
    p.add_argument("--velocities-rad-s", type=float, nargs="*", default=list(DEFAULT_VELOCITIES_RAD_S))
    p.add_argument("--strap-play-rad", type=float, nargs="+", default=[0.0],
                   help="reference PID exo goals past the target, rad (0: on the target; e.g. 0 0.028)")
    p.add_argument("--policies", nargs="*", default=list(DEFAULT_POLICIES),
                   help="policy folders (names under models/ or paths)")
    p.add_argument("--policy-caps-nm", type=float, nargs="+", default=list(DEFAULT_POLICY_CAPS_NM))
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--bootstrap-seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {', '.join(f'{k}={v}' for k, v in QUICK.items())} (explicit options win)")
    p.add_argument("--summary-only", action="store_true", help="do not run trials, summarise the JSONL")
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        for key, value in QUICK.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    if args.subjects < 1 or args.workers < 1 or args.resamples < 1:
        p.error("--subjects, --workers and --resamples must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    configs = build_configs(args.caps_nm, args.velocities_rad_s, args.policies, args.policy_caps_nm, args.strap_play_rad)
    for policy in args.policies:
        resolve_policy(policy)  # fail before any trial
    started = time.time()
    if not args.summary_only:
        run_trials(configs, args.twin, args.levels, args.subjects, args.seed, args.out, args.workers)
    wall_s = time.time() - started
    doc = summarize(read_lines(args.out), configs, args.twin, args.seed, args.levels, args.subjects, args.resamples,
                    args.bootstrap_seed)
    doc["command"] = "python scripts/frontier.py " + " ".join(argv if argv is not None else sys.argv[1:])
    doc["run_wall_s"] = wall_s
    out_dir = args.out.parent
    (out_dir / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out_dir / "summary.md").write_text(markdown(doc))
    written = [out_dir / "summary.json", out_dir / "summary.md"]
    if not args.no_plots:
        written += plot(doc, out_dir)
    print("wrote " + ", ".join(map(str, written)), file=sys.stderr)
    return doc


if __name__ == "__main__":
    main()
