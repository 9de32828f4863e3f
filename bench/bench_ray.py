"""Cost of the Ray backend vs the local one on this machine, measured per-task costs, and the paper-scale projection.

Measured in one run (the machine is shared: each timing is the best of ``--repeats``; the load average
is recorded before and after):

- ``trial_s``: one full-length evaluation trial (PID, reduced twin; ``--full-twin`` adds the full twin)
  in this process, s;
- the same evaluation (``--levels`` x ``--trials`` full-length trials) on the ``local`` backend
  (``--workers`` processes) and on the ``ray`` backend (a local Ray instance of ``--workers`` CPUs,
  connected before the clock starts): wall times and their ratio ``ray / local``, and at twice the
  trials, the marginal cost of a trial on each; the Ray instance's start-up and first call separately;
- Ray's scheduling cost: ``--noop-tasks`` empty tasks submitted at once (driver time per task, s) and
  the round trip of one empty task, s;
- ``transition_s``: one SAC transition end to end (config/sac.yaml, gradient updates included),
  from a ``--train-steps`` run whose updates start after 500 transitions (the steady state), s.

Projection (``projection`` in the JSON, the tables of docs/scaling.md): the paper-scale jobs on 1, 8 and
64 machines of ``--cores-per-machine`` cores, each task on one core:

    wall = startup + waves x task_s x (ray / local) + tasks x submit_s,   waves = ceil(tasks / (machines x cores))

(``ray / local``: the marginal per-trial ratio, at least 1; ``startup``: the instance's start-up and its
first call, for the evaluation; ``tasks x submit_s``: the driver's serial cost, counted in full, so the
projection is an upper bound.)

- evaluation: 1,000 trials per level x 4 levels x 5 controllers = 20,000 trial tasks of ``trial_s``;
- training: 50M transitions is one sequential SAC run (``transition_s`` x 50M whatever the machines);
  machines run the seeds and variants of a sweep side by side (``--sweep-runs`` runs of 50M);
- personalisation: 100 users, one task each, of the configured search budget (config/personalize.yaml,
  wall time, so without the Ray factor) plus the gate's trials.

Usage: ``python bench/bench_ray.py [--trials 20] [--workers 2] [--out bench/results/ray.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from exo.backends import Backend, session
from exo.control import ControllerSpec, load_controller_params
from exo.evaluate import EvalConfig, evaluate, run_trial

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ray.json"

#: The paper-scale jobs of docs/scaling.md.
EVAL_TRIALS = 1000 * 4 * 5
TRAIN_TRANSITIONS = 50_000_000
USERS = 100

#: Empty tasks submitted at once to measure Ray's per-task scheduling cost.
NOOP_TASKS = 1000


def loadavg() -> list[float]:
    """1, 5 and 15 min load averages of this machine."""
    return [round(x, 2) for x in os.getloadavg()]


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn``, s."""
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _noop(x: int) -> int:
    return x


def measure_trial_s(twin: str, repeats: int) -> float:
    """One full-length PID trial on ``twin`` in this process (env built beforehand), s."""
    pid = ControllerSpec("pid", load_controller_params("pid"))
    run_trial(pid, twin, 1, 0, 0)  # builds and caches the env
    return best_of(repeats, lambda: run_trial(pid, twin, 1, 1, 0))


def measure_backends(config: EvalConfig, workers: int, repeats: int) -> dict[str, Any]:
    """The same evaluation on the local and the Ray backend at ``config.trials`` and twice that per level.

    ``*_s``: wall time of one ``evaluate`` call as ``exo eval`` makes it (local: the process pool is
    started by the call; ray: the instance is up, its workers warm). ``*_per_trial_s``: the marginal
    cost of one more trial, (T(2n) - T(n)) / n, free of fixed start-up costs; their ratio is Ray's
    overhead on the work itself.
    """
    import ray

    pid = ControllerSpec("pid", load_controller_params("pid"))
    local = Backend("local", workers=workers)
    on_ray = Backend("ray", workers=workers)
    double = replace(config, trials=2 * config.trials)
    n = len(config.levels) * config.trials
    started = time.perf_counter()
    with session(on_ray):
        startup_s = time.perf_counter() - started
        cold_s = best_of(1, lambda: evaluate(pid, config, backend=on_ray))  # workers start, envs built
        # interleaved (local, ray, local, ray, ...) so that a change of the machine's load hits both alike
        best = {"local": math.inf, "local_2x": math.inf, "ray": math.inf, "ray_2x": math.inf}
        for _ in range(repeats):
            for name, backend, cfg in (("local", local, config), ("ray", on_ray, config),
                                       ("local_2x", local, double), ("ray_2x", on_ray, double)):
                best[name] = min(best[name], best_of(1, lambda b=backend, c=cfg: evaluate(pid, c, backend=b)))
        noop = ray.remote(_noop)
        ray.get(noop.remote(0))
        round_trip_s = best_of(max(3, repeats), lambda: ray.get(noop.remote(0)))
        submit_s = best_of(repeats, lambda: ray.get([noop.remote(i) for i in range(NOOP_TASKS)])) / NOOP_TASKS
    local_s, local_2_s, ray_s, ray_2_s = best["local"], best["local_2x"], best["ray"], best["ray_2x"]
    local_marginal = (local_2_s - local_s) / n
    ray_marginal = (ray_2_s - ray_s) / n
    return {"trials": n, "workers": workers,
            "local_s": round(local_s, 3), "local_2x_s": round(local_2_s, 3),
            "ray_s": round(ray_s, 3), "ray_2x_s": round(ray_2_s, 3), "ray_first_call_s": round(cold_s, 3),
            "ray_over_local": round(ray_s / local_s, 3),
            "local_per_trial_s": round(local_marginal, 5), "ray_per_trial_s": round(ray_marginal, 5),
            "marginal_ray_over_local": round(ray_marginal / local_marginal, 3),
            "ray_startup_s": round(startup_s, 2), "noop_round_trip_s": round(round_trip_s, 5),
            "noop_tasks": NOOP_TASKS, "submit_s_per_task": round(submit_s, 6)}


def measure_transition_s(steps: int) -> dict[str, Any]:
    """One SAC transition end to end (config/sac.yaml with updates from 500 transitions on), s."""
    from exo.learn.config import load_sac_config
    from exo.learn.sac import train

    cfg, sources = load_sac_config()
    cfg = cfg.with_overrides(learning_starts=500, eval_every_steps=10**9, checkpoint_every_steps=10**9)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        train(Path(tmp) / "run", twin="reduced", steps=steps, seed=0, config=cfg, config_sources=sources,
              progress_bar=False, echo=lambda _: None)
        wall = time.perf_counter() - started
    return {"steps": steps, "wall_s": round(wall, 2), "transition_s": wall / steps,
            "note": "includes start-up and one final 12-trial evaluation (an upper bound per transition)"}


def personalisation_task_s() -> dict[str, Any]:
    """One user's personalisation: the configured budget plus the gate's trials (2 controllers x subjects)."""
    from exo.personalize.run import PersonalizeConfig

    settings = PersonalizeConfig.from_yaml()
    return {"budget_s": settings.budget_min * 60.0, "gate_trials": 2 * settings.gate.subjects,
            "twin": settings.twin}


def project(tasks: int, task_s: float, ratio: float, submit_s: float, machines: int, cores: int,
            startup_s: float = 0.0) -> float:
    """Wall time of ``tasks`` independent tasks on ``machines`` x ``cores`` slots (module docstring), s."""
    waves = math.ceil(tasks / (machines * cores))
    return startup_s + waves * task_s * ratio + tasks * submit_s


def projection(result: dict[str, Any], cores: int, sweep_runs: int) -> dict[str, Any]:
    """The paper-scale jobs on 1, 8 and 64 machines (hours)."""
    marginal = result["backends"]["marginal_ray_over_local"]
    ratio = max(1.0, marginal) if math.isfinite(marginal) and marginal > 0 else 1.0
    startup = result["backends"]["ray_startup_s"] + result["backends"]["ray_first_call_s"]
    submit = result["backends"]["submit_s_per_task"]
    trial_s = result["trial_s"]["full" if "full" in result["trial_s"] else "reduced"]
    user = result["personalisation"]
    user_s = user["budget_s"] + user["gate_trials"] * trial_s * ratio  # the budget is wall time: no Ray factor
    run_s = result["training"]["transition_s"] * TRAIN_TRANSITIONS
    out: dict[str, Any] = {"cores_per_machine": cores, "ratio_used": ratio, "trial_s_used": trial_s,
                           "sweep_runs": sweep_runs, "hours": {}}
    for machines in (1, 8, 64):
        out["hours"][str(machines)] = {
            "eval_20000_trials": round(project(EVAL_TRIALS, trial_s, ratio, submit, machines, cores, startup) / 3600, 3),
            "train_one_50M_run": round(run_s / 3600, 1),
            f"sweep_{sweep_runs}_runs_of_50M": round(project(sweep_runs, run_s, 1.0, submit, machines, cores) / 3600, 1),
            "personalise_100_users": round(project(USERS, user_s, 1.0, submit, machines, cores) / 3600, 2),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--trials", type=int, default=20, help="trials per level of the backend comparison")
    parser.add_argument("--workers", type=int, default=2, help="local processes = CPUs of the local Ray instance")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-twin", action="store_true", help="also time a trial on the full (MyoLeg) twin")
    parser.add_argument("--train-steps", type=int, default=3000, help="0 = skip the training measurement")
    parser.add_argument("--cores-per-machine", type=int, default=2)
    parser.add_argument("--sweep-runs", type=int, default=25, help="runs of the projected sweep (e.g. 5 seeds x 5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "python": sys.version.split()[0]},
                              "loadavg_start": loadavg()}
    result["trial_s"] = {"reduced": round(measure_trial_s("reduced", args.repeats), 4)}
    if args.full_twin:
        result["trial_s"]["full"] = round(measure_trial_s("full", args.repeats), 4)
    config = EvalConfig(twin="reduced", levels=tuple(args.levels), trials=args.trials, timeseries_per_level=0)
    result["backends"] = measure_backends(config, args.workers, args.repeats)
    if args.train_steps:
        result["training"] = measure_transition_s(args.train_steps)
    else:
        result["training"] = {"transition_s": math.nan}
    result["personalisation"] = personalisation_task_s()
    result["projection"] = projection(result, args.cores_per_machine, args.sweep_runs)
    result["loadavg_end"] = loadavg()

    b = result["backends"]
    print(f"load average at start {result['loadavg_start']}, at end {result['loadavg_end']} ({os.cpu_count()} CPUs)")
    print(f"one full-length trial: {result['trial_s']} s")
    print(f"{b['trials']} trials, {b['workers']} workers: local {b['local_s']:.2f} s, ray {b['ray_s']:.2f} s "
          f"(ratio {b['ray_over_local']:.3f}); ray start-up {b['ray_startup_s']:.1f} s, first call "
          f"{b['ray_first_call_s']:.2f} s")
    print(f"marginal cost of a trial: local {b['local_per_trial_s'] * 1e3:.2f} ms, ray {b['ray_per_trial_s'] * 1e3:.2f} ms "
          f"(ratio {b['marginal_ray_over_local']:.3f})")
    print(f"ray: empty task round trip {b['noop_round_trip_s'] * 1e3:.2f} ms, {b['noop_tasks']} tasks at once "
          f"{b['submit_s_per_task'] * 1e3:.3f} ms per task")
    print(f"SAC: {result['training']['transition_s'] * 1e3:.2f} ms per transition")
    print(f"projection, hours ({args.cores_per_machine} cores per machine):")
    for machines, hours in result["projection"]["hours"].items():
        print(f"  {machines:>3s} machine(s): " + ", ".join(f"{k} {v}" for k, v in hours.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
