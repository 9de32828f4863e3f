"""Cost of the Ray backend vs the local one on this machine, measured per-task costs, and the paper-scale projection.

Measured in one run (the machine is shared: each timing is the best of ``--repeats``; the load average
is recorded before and after):

- ``trial_s``: one full-length evaluation trial (PID, reduced twin; ``--full-twin`` adds the full twin)
  in this process, s;
- the same trials (``--levels`` x ``--trials`` full-length PID trials, reduced twin) on the ``local``
  backend (``--workers`` processes, started by each call as ``exo eval`` does) and on the ``ray`` backend
  (a local instance of ``--workers`` CPUs, connected and warm), interleaved: wall time, the time spent
  inside the tasks, and the backend's overhead per task, (wall x workers - inside) / tasks, which a
  change of the machine's load (shared) does not bias; the Ray instance's start-up and first call;
- Ray's scheduling cost: ``--noop-tasks`` empty tasks submitted at once (driver time per task, s) and
  the round trip of one empty task, s;
- ``transition_s``: one SAC transition end to end (config/sac.yaml's learner, gradient updates included),
  timed over ``--train-steps`` transitions after a 2,000-transition warm-up (the steady state), s.

Projection (``projection`` in the JSON, the tables of docs/scaling.md): the paper-scale jobs on 1, 8 and
64 machines of ``--cores-per-machine`` cores, each task on one core, on the Ray backend:

    wall = startup + max(waves x (task_s + overhead_s), tasks x submit_s),  waves = ceil(tasks / (machines x cores))

(``overhead_s``: Ray's measured overhead per task; ``tasks x submit_s``: the driver submits tasks one after
another, a floor however many machines there are; ``startup``: start-up and first call, evaluation only.)

- evaluation: 1,000 trials per level x 4 levels x 5 controllers = 20,000 trial tasks of ``trial_s``
  (the full twin's with ``--full-twin``);
- training: 50M transitions is one sequential SAC run (``transition_s`` x 50M whatever the machines);
  machines run the seeds and variants of a sweep side by side (``--sweep-runs`` runs of 50M);
- personalisation: 100 users, one task each, of the configured search budget (config/personalize.yaml,
  wall time) plus the gate's trials.

Usage: ``python bench/bench_ray.py [--trials 20] [--workers 2] [--out bench/results/ray.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exo.backends import Backend, map_tasks, session
from exo.control import ControllerSpec, load_controller_params
from exo.evaluate import run_trial

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


def timed_trial(item: tuple[str, int, int]) -> tuple[int, float]:
    """One full-length PID trial (twin, level, trial index) in a worker: (worker pid, seconds inside the task)."""
    twin, level, trial = item
    started = time.perf_counter()
    run_trial(ControllerSpec("pid", load_controller_params("pid")), twin, level, trial, 0)
    return os.getpid(), time.perf_counter() - started


def measure_call(backend: Backend, items: list[tuple[str, int, int]]) -> dict[str, float]:
    """One :func:`map_tasks` call: wall time, time spent inside the tasks, and what is left for the backend.

    ``overhead_s_per_task`` = (wall x workers - time inside the tasks) / tasks: scheduling, transfers,
    result collection and idle slots, per task; measured in the same call as the work, so a change of
    the machine's load slows both alike.
    """
    started = time.perf_counter()
    out = map_tasks(timed_trial, items, backend)
    wall = time.perf_counter() - started
    inside = sum(seconds for _, seconds in out)
    return {"wall_s": wall, "inside_s": inside, "workers_used": len({pid for pid, _ in out}),
            "overhead_s_per_task": (wall * backend.workers - inside) / len(items),
            "efficiency": inside / (wall * backend.workers)}


def measure_backends(levels: tuple[int, ...], trials: int, workers: int, repeats: int) -> dict[str, Any]:
    """The same trials (reduced twin) on the local and the Ray backend, interleaved; the best call of each.

    ``local``: each call starts its process pool, as ``exo eval`` does (``local_warm``: the calls after
    the first pay the same; there is no warm pool to reuse). ``ray``: the instance is up and its workers
    warm (``ray_startup_s`` and ``ray_first_call_s`` are the one-off costs of a command).
    """
    import ray

    items = [("reduced", level, trial) for level in levels for trial in range(trials)]
    local = Backend("local", workers=workers)
    on_ray = Backend("ray", workers=workers)
    started = time.perf_counter()
    with session(on_ray):
        startup_s = time.perf_counter() - started
        first = measure_call(on_ray, items)  # workers start, envs built
        best: dict[str, dict[str, float]] = {}
        for _ in range(repeats):  # interleaved, so that a change of the machine's load hits both alike
            for name, backend in (("local", local), ("ray", on_ray)):
                call = measure_call(backend, items)
                if name not in best or call["wall_s"] < best[name]["wall_s"]:
                    best[name] = call
        noop = ray.remote(_noop)
        ray.get(noop.remote(0))
        round_trip_s = best_of(max(3, repeats), lambda: ray.get(noop.remote(0)))
        submit_s = best_of(repeats, lambda: ray.get([noop.remote(i) for i in range(NOOP_TASKS)])) / NOOP_TASKS
    rounded = {name: {k: round(v, 5) for k, v in call.items()} for name, call in best.items()}
    return {"trials": len(items), "workers": workers, **rounded,
            "ray_over_local_wall": round(best["ray"]["wall_s"] / best["local"]["wall_s"], 3),
            "ray_startup_s": round(startup_s, 2), "ray_first_call_s": round(first["wall_s"], 2),
            "noop_round_trip_s": round(round_trip_s, 5), "noop_tasks": NOOP_TASKS,
            "submit_s_per_task": round(submit_s, 6)}


def measure_transition_s(steps: int) -> dict[str, Any]:
    """One SAC transition end to end in the steady state (config/sac.yaml's learner, batch, envs and UTD), s.

    A warm-up of 2,000 transitions (500 random, then updates: SBX compiles its update loop there) is not
    timed; then ``steps`` transitions of the same run are.
    """
    from exo.learn.config import load_sac_config
    from exo.learn.sac import build_model, make_vec_env

    cfg, _ = load_sac_config()
    cfg = cfg.with_overrides(learning_starts=500)
    venv = make_vec_env("reduced", cfg)
    try:
        model = build_model(cfg, venv, seed=0, total_steps=steps + 10_000)
        model.learn(2_000)
        started = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        wall = time.perf_counter() - started
    finally:
        venv.close()
    return {"steps": steps, "wall_s": round(wall, 2), "transition_s": wall / steps, "learner": cfg.learner,
            "batch_size": cfg.batch_size, "n_envs": cfg.n_envs, "utd_ratio": cfg.utd_ratio,
            "note": "steady state after a 2,000-transition warm-up (no evaluations or checkpoints)"}


def personalisation_task_s() -> dict[str, Any]:
    """One user's personalisation: the configured budget plus the gate's trials (2 controllers x subjects)."""
    from exo.personalize.run import PersonalizeConfig

    settings = PersonalizeConfig.from_yaml()
    return {"budget_s": settings.budget_min * 60.0, "gate_trials": 2 * settings.gate.subjects,
            "twin": settings.twin}


def project(tasks: int, task_s: float, overhead_s: float, submit_s: float, machines: int, cores: int,
            startup_s: float = 0.0) -> float:
    """Wall time of ``tasks`` independent tasks on ``machines`` x ``cores`` slots (module docstring), s."""
    waves = math.ceil(tasks / (machines * cores))
    return startup_s + max(waves * (task_s + overhead_s), tasks * submit_s)


def projection(result: dict[str, Any], cores: int, sweep_runs: int) -> dict[str, Any]:
    """The paper-scale jobs on 1, 8 and 64 machines (hours)."""
    b = result["backends"]
    overhead = max(0.0, b["ray"]["overhead_s_per_task"])
    startup = b["ray_startup_s"] + b["ray_first_call_s"]
    submit = b["submit_s_per_task"]
    trial_s = result["trial_s"]["full" if "full" in result["trial_s"] else "reduced"]
    user = result["personalisation"]
    user_s = user["budget_s"] + user["gate_trials"] * trial_s  # the budget is wall time
    run_s = result["training"]["transition_s"] * TRAIN_TRANSITIONS
    out: dict[str, Any] = {"cores_per_machine": cores, "trial_s_used": trial_s, "overhead_s_per_task_used": overhead,
                           "sweep_runs": sweep_runs, "hours": {}}
    for machines in (1, 8, 64):
        out["hours"][str(machines)] = {
            "eval_20000_trials": round(project(EVAL_TRIALS, trial_s, overhead, submit, machines, cores, startup) / 3600,
                                       3),
            "train_one_50M_run": round(run_s / 3600, 1),
            f"sweep_{sweep_runs}_runs_of_50M": round(project(sweep_runs, run_s, overhead, submit, machines, cores)
                                                     / 3600, 1),
            "personalise_100_users": round(project(USERS, user_s, overhead, submit, machines, cores) / 3600, 2),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--trials", type=int, default=20, help="trials per level of the backend comparison")
    parser.add_argument("--workers", type=int, default=2, help="local processes = CPUs of the local Ray instance")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-twin", action="store_true", help="also time a trial on the full (MyoLeg) twin")
    parser.add_argument("--train-steps", type=int, default=10000, help="0 = skip the training measurement")
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
    result["backends"] = measure_backends(tuple(args.levels), args.trials, args.workers, args.repeats)
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
    for name in ("local", "ray"):
        c = b[name]
        print(f"{name:>5s}: {b['trials']} trials on {b['workers']} workers in {c['wall_s']:.2f} s, {c['inside_s']:.2f} s "
              f"inside the tasks, efficiency {c['efficiency']:.3f}, overhead {c['overhead_s_per_task'] * 1e3:.2f} ms "
              f"per task ({c['workers_used']} workers used)")
    print(f"ray / local wall: {b['ray_over_local_wall']:.3f}; ray start-up {b['ray_startup_s']:.1f} s, first call "
          f"{b['ray_first_call_s']:.2f} s")
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
