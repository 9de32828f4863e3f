"""Personalised baselines on hidden subjects: assess -> identify -> personalise -> evaluate on the TRUE subject.

For generated subjects of the full twin (seeds held out from every tuning and evaluation seed), the script
does what a clinic would do with a new user:

1. runs the assessment protocol on the subject (``exo.identify.simulate.simulate_assessment``, sensor noise on);
2. identifies the user's twin from that recording (``exo.identify.fit.identify``, full twin);
3. runs ``exo personalize`` on that identified twin (a throw-away encrypted store, the default caps);
4. evaluates, on the **true** subject (not the identified one), through the safety monitor with the same limits,
   from ``--trials`` start-angle perturbations: the generic PID (what every user gets today), the generic
   reflex-aware reference PID (``config/controllers.yaml``), the generic learned policy (the committed
   default), the personalised baseline (the best of the tuned PID / reference PID searches), the personalised
   policy (the policy fine-tuned on the identified twin, gate or not), and the version ``exo personalize``
   deployed (the generic PID again if its candidate was rejected by the gate).

The headline comparison: the personalised policy minus the generic policy, and minus the personalised
baseline, on peak and RMS interaction torque and final error (paired per subject, 95 % bootstrap intervals).

One JSON line per subject goes to ``--out`` (appended; a subject already there is skipped, so a run cut off
resumes), and the summary (means, paired differences with 95 % bootstrap intervals) to ``<out>.summary.json``.

    python scripts/validate_personalization.py --levels 0 1 2 3 --subjects 5 --budget-min 3 \\
        --out runs/personalization/validation.jsonl

Seeds: subject ``i`` of level ``L`` is ``SeedSequence([seed, 7919, L, i])`` (``--seed`` default 20261205).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = ("peak_torque_nm", "rms_torque_nm", "final_error_deg", "intervention_steps")


def subject_seed(seed: int, level: int, i: int) -> int:
    return int(np.random.SeedSequence([seed, 7919, level, i]).generate_state(1)[0])


def run_subject(level: int, i: int, args: argparse.Namespace) -> dict:
    from exo.control import load_controller_params
    from exo.identify.fit import identify
    from exo.identify.records import profile_entry
    from exo.identify.simulate import simulate_assessment
    from exo.personalize.evaluation import ControllerChoice, UserTwin, evaluate_on_user
    from exo.personalize.policy import TunedPolicy
    from exo.personalize.run import PersonalizeConfig, generic_choice, personalize_user
    from exo.users import UserStore, create_key_file

    seed = subject_seed(args.seed, level, i)
    t0 = time.monotonic()
    recording, truth = simulate_assessment("full", level, seed)
    result = identify(recording, twin="full", workers=args.workers)
    t_identify = time.monotonic() - t0
    with tempfile.TemporaryDirectory() as tmp:
        key = create_key_file(Path(tmp) / "keys" / "store.key")
        store = UserStore.open(Path(tmp) / "store", key_file=key, create=True)
        store.create_user("p-validate", mas_level=level)
        store.set_identified_twin("p-validate", profile_entry(result, 1) | {"session": None})
        config = dataclasses.replace(PersonalizeConfig.from_yaml(), twin="full")
        t1 = time.monotonic()
        outcome = personalize_user(store, "p-validate", config, budget_s=args.budget_min * 60.0, workers=args.workers)
        t_personalize = time.monotonic() - t1
        identified = UserTwin.from_store(store, "p-validate", twin="full")
        with tempfile.TemporaryDirectory() as private:  # the decrypted policy lives only while it is evaluated
            deployed = outcome.version if outcome.verdict.passed else None
            policy_folder = None
            if "policy" in store.session("p-validate", outcome.session).artefacts:
                tuned = TunedPolicy.from_json(store.get_json("p-validate", outcome.session, "policy"))
                policy_folder = tuned.write_folder(Path(private) / "personalized-policy")
            true_twin = dataclasses.replace(identified, subject=truth)
            cap = float(identified.limits.user_torque_cap_nm)
            reference = load_controller_params("reference_pid")
            reference["torque_limit_nm"] = min(float(reference["torque_limit_nm"]), cap)
            baselines = {f: s for f, s in outcome.searches.items() if f != "policy" and s.get("best")}
            best_family = min(baselines, key=lambda f: baselines[f]["best_cost"]) if baselines else None
            choices = {
                "generic_pid": generic_choice(cap),
                "generic_reference_pid": ControllerChoice("reference_pid", reference),
                "generic_policy": ControllerChoice("sac", {"policy": "", "torque_limit_nm": cap}),
            }
            if best_family is not None:
                best = baselines[best_family]["best"]
                choices["personalized_baseline"] = ControllerChoice(best["name"], dict(best["params"]))
            if policy_folder is not None:
                choices["personalized_policy"] = ControllerChoice("sac", {"policy": str(policy_folder),
                                                                          "torque_limit_nm": cap})
            if deployed is None:
                choices["personalized"] = generic_choice(cap)
            elif deployed.controller == "sac":
                choices["personalized"] = choices.get("personalized_policy", generic_choice(cap))
            else:
                choices["personalized"] = ControllerChoice(deployed.controller, dict(deployed.params))
            subjects = [truth] * args.trials
            scores = {name: evaluate_on_user(c, true_twin, subjects, seed=10_000 + i) for name, c in choices.items()}
    return {
        "level": level, "subject": i, "subject_seed": seed,
        "identified_level": result.mas_level, "gate_passed": outcome.verdict.passed, "gate_reason": outcome.verdict.reason,
        "deployed_family": (deployed.controller if deployed else None), "best_baseline_family": best_family,
        "personalized": {k: v for k, v in choices["personalized"].to_dict().items() if k != "params"}
        | {"params": {k: v for k, v in choices["personalized"].params.items() if k != "policy"}},
        "trials": {name: {m: s.values(m).tolist() for m in METRICS} for name, s in scores.items()},
        "means": {name: s.means for name, s in scores.items()},
        "time_identify_s": round(t_identify, 1), "time_personalize_s": round(t_personalize, 1),
        "load_average": os.getloadavg()[0],
    }


def bootstrap_ci(x: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [float(np.mean(rng.choice(x, size=len(x)))) for _ in range(n)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize(rows: list[dict]) -> dict:
    out: dict = {}
    for level in sorted({r["level"] for r in rows}):
        rs = [r for r in rows if r["level"] == level]
        entry: dict = {"subjects": len(rs), "gate_passed": sum(r["gate_passed"] for r in rs),
                       "identified_level_correct": sum(r["identified_level"] == level for r in rs)}
        names = sorted({n for r in rs for n in r["means"]})
        for name in names:
            have = [r for r in rs if name in r["means"]]
            entry[name] = {m: float(np.mean([r["means"][name][m] for r in have])) for m in METRICS}
        pairs = [("personalized", "generic_pid"), ("personalized", "generic_reference_pid"),
                 ("personalized_policy", "generic_policy"), ("personalized_policy", "personalized_baseline")]
        for a, b in pairs:
            have = [r for r in rs if a in r["means"] and b in r["means"]]
            for m in METRICS[:3]:
                d = np.array([r["means"][a][m] - r["means"][b][m] for r in have])
                lo, hi = bootstrap_ci(d) if len(d) > 1 else (math.nan, math.nan)
                entry[f"{a}_minus_{b}_{m}"] = {"subjects": len(d), "mean": float(np.mean(d)) if len(d) else math.nan,
                                               "ci95": [lo, hi]}
        out[str(level)] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--subjects", type=int, default=5, help="subjects per level")
    parser.add_argument("--budget-min", type=float, default=3.0, help="exo personalize budget per subject, min")
    parser.add_argument("--trials", type=int, default=1, help="evaluation trials per controller on the true subject "
                        "(the task starts every trial at the same pose: more only with config/env.yaml's start noise)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--out", type=Path, default=Path("runs/personalization/validation.jsonl"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    rows = []
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            row = json.loads(line)
            rows.append(row)
            done.add((row["level"], row["subject"]))
    todo = [(lv, i) for lv in args.levels for i in range(args.subjects) if (lv, i) not in done]
    for k, (level, i) in enumerate(todo, 1):
        row = run_subject(level, i, args)
        rows.append(row)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[{k}/{len(todo)}] level {level} subject {i}: gate {'passed' if row['gate_passed'] else 'rejected'}; "
                   + "; ".join(f"{n} peak {m['peak_torque_nm']:.1f} rms {m['rms_torque_nm']:.1f} "
                               f"err {m['final_error_deg']:.2f}" for n, m in row["means"].items()), flush=True)
    summary = summarize(rows)
    Path(str(args.out) + ".summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
