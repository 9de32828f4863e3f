"""Throughput of the twins: env steps/s vs twin.step/s vs a raw mj_step loop on the same model.

For each twin kind, three loops of ``--steps`` control steps (10 physics steps each):

- ``env``: ``KneeExtensionEnv.step`` (reflex, twin, observation, reward, info);
- ``twin``: ``KneeTwin.step`` alone;
- ``raw``: ``mujoco.mj_step(model, data, nstep=10)`` on the twin's own model and data.

Each loop is repeated ``--repeats`` times and the best run is kept (the machine is
shared). ``overhead = raw steps/s / env steps/s``. Prints a table and writes JSON
(default ``bench/results/twin.json``).

Usage: ``python bench/bench_twin.py [--steps 3000] [--full-steps 600] [--out path]``
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mujoco
import numpy as np

from exo.envs.knee_extension import KneeExtensionEnv

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "twin.json"


def _best_rate(loop: Callable[[int], None], steps: int, repeats: int) -> float:
    """Best steps/s over ``repeats`` runs of ``loop(steps)``."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        loop(steps)
        best = min(best, time.perf_counter() - t0)
    return steps / best


def bench_kind(kind: str, steps: int, repeats: int, level: int = 2) -> dict[str, float]:
    """Steps/s of the env, the twin and raw MuJoCo for one twin kind."""
    env = KneeExtensionEnv(kind, level=level)
    twin = env.twin
    actions = (0.6 * np.sin(np.linspace(0.0, 20.0 * np.pi, steps)) - 0.3).astype(np.float32).reshape(-1, 1)
    torques = [float(a) * twin.max_exo_torque_nm for a in actions[:, 0]]

    def env_loop(n: int) -> None:
        env.reset(seed=0)
        step = env.step
        for i in range(n):
            _, _, term, trunc, _ = step(actions[i])
            if term or trunc:
                env.reset()

    def twin_loop(n: int) -> None:
        twin.reset(level=level, seed=0)
        step = twin.step
        for i in range(n):
            step(torques[i])

    model, data = twin.model, twin.data  # type: ignore[attr-defined]
    nstep = round(twin.control_timestep_s / model.opt.timestep)

    def raw_loop(n: int) -> None:
        twin.reset(level=level, seed=0)
        for _ in range(n):
            mujoco.mj_step(model, data, nstep=nstep)

    env_rate = _best_rate(env_loop, steps, repeats)
    twin_rate = _best_rate(twin_loop, steps, repeats)
    raw_rate = _best_rate(raw_loop, steps, repeats)
    return {
        "env_steps_per_s": env_rate,
        "twin_steps_per_s": twin_rate,
        "raw_mj_steps_per_s": raw_rate,
        "overhead_env_vs_raw": raw_rate / env_rate,
        "overhead_twin_vs_raw": raw_rate / twin_rate,
        "physics_steps_per_control": nstep,
        "nv": int(model.nv),
        "nu": int(model.nu),
        "steps": steps,
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="control steps per loop, reduced twin")
    parser.add_argument("--full-steps", type=int, default=600, help="control steps per loop, full twin")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=["reduced", "full"], choices=["reduced", "full"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    results = {}
    for kind in args.kinds:
        steps = args.full_steps if kind == "full" else args.steps
        results[kind] = bench_kind(kind, steps, args.repeats)

    header = f"{'twin':8} {'env steps/s':>12} {'twin steps/s':>13} {'raw mj steps/s':>15} {'raw/env':>8} {'raw/twin':>9}"
    print(header)
    print("-" * len(header))
    for kind, r in results.items():
        print(
            f"{kind:8} {r['env_steps_per_s']:12.0f} {r['twin_steps_per_s']:13.0f} {r['raw_mj_steps_per_s']:15.0f} "
            f"{r['overhead_env_vs_raw']:8.2f} {r['overhead_twin_vs_raw']:9.2f}"
        )
    report = {
        "benchmark": "twin",
        "unit": "control steps per second (1 control step = physics_steps_per_control x 1 ms)",
        "python": sys.version.split()[0],
        "mujoco": mujoco.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
