"""Throughput of SAC training on this machine: env transitions/s and gradient steps/s.

Measured (each the best of ``--repeats``, the machine is shared):

- ``env``: transitions/s of the reduced (or ``--twin``) training env with random actions:
  one bare env, and 2 envs in SB3's ``DummyVecEnv`` / ``SubprocVecEnv`` (random actions);
- ``collect``: transitions/s of SB3's ``collect_rollouts`` with the SAC policy in the loop
  (``gradient_steps=0``), DummyVecEnv vs SubprocVecEnv with ``n_envs`` = 2: what a
  training run actually pays per transition;
- ``grad``: SAC gradient steps/s of the [64, 64] GELU networks at several batch sizes,
  per learner (SB3/torch with 1 thread, and 2 threads at the configured batch; SBX/JAX);
- ``train``: end-to-end slices of ``config/sac.yaml`` training per learner and batch size
  (transitions/s and gradient steps/s after ``learning_starts``, at the configured UTD).

Prints a table, writes JSON (default ``bench/results/learn.json``).

Usage: ``python bench/bench_learn.py [--twin reduced] [--steps 4000] [--grad-steps 300] [--repeats 3]
[--learners sb3 sbx] [--slices sbx:128:8:16 ...]``
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "learn.json"


#: End-to-end slices: learner:batch:envs:train_freq (the configured 2 envs x 64 steps, and 8 envs x 16 steps:
#: the same 128 transitions per training phase, with the per-step overhead of collection shared by 8 envs).
DEFAULT_SLICES = ("sb3:512:2:64", "sb3:256:2:64", "sbx:512:2:64", "sbx:256:2:64", "sbx:256:8:16", "sbx:128:8:16")


def _slice(spec: str) -> tuple[str, int, int, int]:
    """``learner:batch:envs:freq`` -> its parts (ValueError naming the spec if malformed)."""
    try:
        learner, batch, n_envs, freq = spec.split(":")
        return learner, int(batch), int(n_envs), int(freq)
    except ValueError:
        raise ValueError(f"slice {spec!r} is not LEARNER:BATCH:ENVS:FREQ (e.g. sbx:128:8:16)") from None


def _best(run: Callable[[], float], repeats: int) -> float:
    """Best rate over ``repeats`` calls of ``run`` (each returns a rate)."""
    return max(run() for _ in range(repeats))


def bench_env(twin: str, steps: int, repeats: int) -> dict[str, float]:
    """Transitions/s with random actions: bare env, DummyVecEnv(2), SubprocVecEnv(2)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from exo.learn.config import SacConfig
    from exo.learn.sac import make_env

    cfg = SacConfig()
    factory = lambda: make_env(twin, cfg.levels, cfg.subject_noise, {})  # noqa: E731
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.3, size=(steps, 2, 1)).astype(np.float32)
    out: dict[str, float] = {}

    env = factory()
    env.reset(seed=0)

    def bare() -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            _, _, term, trunc, _ = env.step(actions[i, 0])
            if term or trunc:
                env.reset()
        return steps / (time.perf_counter() - t0)

    out["bare_env"] = _best(bare, repeats)
    for name, cls, kwargs in (("dummy_vec_2", DummyVecEnv, {}),
                              ("subproc_vec_2", SubprocVecEnv, {"start_method": "forkserver"})):
        venv = cls([factory, factory], **kwargs)
        venv.seed(0)
        venv.reset()

        def vec(venv=venv) -> float:
            t0 = time.perf_counter()
            for i in range(steps // 2):
                venv.step(actions[i])
            return (steps // 2) * 2 / (time.perf_counter() - t0)

        out[name] = _best(vec, repeats)
        venv.close()
    return out


def bench_collect(twin: str, steps: int, repeats: int) -> dict[str, float]:
    """Transitions/s of SB3 collection with the policy in the loop (no gradient steps)."""
    from exo.learn.config import load_sac_config
    from exo.learn.sac import build_model, make_vec_env

    cfg, _ = load_sac_config()
    out: dict[str, float] = {}
    for vec in ("dummy", "subproc"):
        c = cfg.with_overrides(vec_env=vec, learning_starts=0, n_envs=2)
        venv = make_vec_env(twin, c)
        model = build_model(c, venv, seed=0, total_steps=10 * steps * repeats + 10_000)
        model.gradient_steps = 0  # collection only

        def run(model=model) -> float:
            t0 = time.perf_counter()
            model.learn(steps, reset_num_timesteps=False)
            return steps / (time.perf_counter() - t0)

        run()  # warm-up (env reset, first forward)
        out[f"{vec}_vec_2"] = _best(run, repeats)
        venv.close()
    return out


def bench_grad(twin: str, batches: list[int], grad_steps: int, repeats: int, threads: int,
               learner: str = "sb3") -> dict[str, float]:
    """Gradient steps/s of SAC (``learner``) per batch size (replay buffer pre-filled with real transitions).

    ``threads`` sets torch's intra-op threads (SB3); SBX's XLA threads are fixed when JAX
    starts (:mod:`exo.learn.sbx_sac`).
    """
    from exo.learn.config import load_sac_config
    from exo.learn.sac import build_model, make_vec_env

    torch.set_num_threads(threads)
    cfg, _ = load_sac_config()
    c = cfg.with_overrides(learning_starts=0, vec_env="dummy", learner=learner)
    venv = make_vec_env(twin, c)
    model = build_model(c, venv, seed=0, total_steps=20_000)
    model.gradient_steps = 0
    model.learn(max(batches) * 2, reset_num_timesteps=True)  # fill the buffer
    out: dict[str, float] = {}
    for batch in batches:
        model.train(gradient_steps=20, batch_size=batch)  # warm-up

        def run(batch=batch) -> float:
            t0 = time.perf_counter()
            model.train(gradient_steps=grad_steps, batch_size=batch)
            return grad_steps / (time.perf_counter() - t0)

        out[str(batch)] = _best(run, repeats)
    venv.close()
    return out


def bench_train(twin: str, steps: int, **overrides: object) -> dict[str, float]:
    """One slice of real training with config/sac.yaml (+ ``overrides``): transitions/s and gradient steps/s."""
    from exo.learn.config import load_sac_config
    from exo.learn.sac import build_model, make_vec_env

    cfg, _ = load_sac_config()
    torch.set_num_threads(cfg.torch_threads)
    c = cfg.with_overrides(learning_starts=2_000, **overrides)
    venv = make_vec_env(twin, c)
    model = build_model(c, venv, seed=0, total_steps=100_000)
    model.learn(c.learning_starts + 256)
    updates0 = model._n_updates
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    dt = time.perf_counter() - t0
    venv.close()
    return {
        "transitions_per_s": steps / dt,
        "grad_steps_per_s": (model._n_updates - updates0) / dt,
        "batch_size": c.batch_size,
        "utd_ratio": c.utd_ratio,
        "n_envs": c.n_envs,
        "train_freq": c.train_freq,
        "vec_env": c.vec_env,
        "learner": c.learner,
        "transitions": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--twin", default="reduced", choices=("reduced", "full"))
    parser.add_argument("--steps", type=int, default=4000, help="transitions per env/collect measurement")
    parser.add_argument("--grad-steps", type=int, default=300, help="gradient steps per measurement")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 512, 1024, 4096])
    parser.add_argument("--train-steps", type=int, default=6000, help="transitions of the end-to-end slice")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--learners", nargs="+", default=["sb3", "sbx"], choices=("sb3", "sbx"),
                        help="SAC implementations to compare (gradient steps and the end-to-end slice)")
    parser.add_argument("--slices", nargs="+", default=list(DEFAULT_SLICES), metavar="LEARNER:BATCH:ENVS:FREQ",
                        help="end-to-end training slices (UTD from config/sac.yaml): learner, batch size, "
                             "number of envs, train_freq (env steps per env between training phases)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import os

    import stable_baselines3

    from exo.learn.config import load_sac_config

    cfg, _ = load_sac_config()
    torch.set_num_threads(1)
    started = time.perf_counter()
    load_before = os.getloadavg()
    env = bench_env(args.twin, args.steps, args.repeats)
    collect = bench_collect(args.twin, args.steps, args.repeats)
    grad: dict[str, dict[str, float]] = {}
    train: dict[str, dict[str, float]] = {}
    for learner in args.learners:
        grad[f"{learner}_threads_1"] = bench_grad(args.twin, args.batches, args.grad_steps, args.repeats, 1, learner)
        if learner == "sb3":
            grad["sb3_threads_2"] = bench_grad(args.twin, [cfg.batch_size], args.grad_steps, args.repeats, 2)
            torch.set_num_threads(1)
    for spec in args.slices:
        learner, batch, n_envs, freq = _slice(spec)
        if learner in args.learners:
            train[f"{learner}_batch_{batch}_envs_{n_envs}"] = bench_train(
                args.twin, args.train_steps, learner=learner, batch_size=batch, n_envs=n_envs, train_freq=freq)
    result = {
        "benchmark": "learn",
        "unit": "transitions (env steps summed over envs) per second; SAC gradient steps per second",
        "twin": args.twin,
        "time_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "nice": os.nice(0),
        "config": {"batch_size": cfg.batch_size, "utd_ratio": cfg.utd_ratio, "n_envs": cfg.n_envs,
                   "vec_env": cfg.vec_env, "net_arch": list(cfg.net_arch), "torch_threads": cfg.torch_threads},
        "env_random_actions": env,
        "collect_with_policy": collect,
        "grad_steps_per_s": grad,
        "train_slice": train,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"SAC throughput, {args.twin} twin (load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}, "
          f"nice {os.nice(0)}); best of {args.repeats}")
    for name, rate in env.items():
        print(f"  env, random actions, {name:16s} {rate:9,.0f} transitions/s")
    for name, rate in collect.items():
        print(f"  collect with policy, {name:15s} {rate:9,.0f} transitions/s")
    for threads, rates in grad.items():
        for batch, rate in rates.items():
            print(f"  grad steps, {threads}, batch {batch:>5s} {rate:9.1f} /s")
    for name, t in train.items():
        print(f"  train slice {name} (UTD {t['utd_ratio']}, {t['n_envs']} {t['vec_env']} envs, "
              f"train_freq {t['train_freq']}): "
              f"{t['transitions_per_s']:,.0f} transitions/s, {t['grad_steps_per_s']:.1f} grad steps/s")
    best = max(train.values(), key=lambda t: t["transitions_per_s"])
    hours = 50e6 / max(best["transitions_per_s"], 1e-9) / 3600
    print(f"  -> fastest slice ({best['learner']}, batch {best['batch_size']}): the paper's 50M transitions in "
          f"{hours:,.0f} h; 10M in {hours / 5:,.1f} h; transitions in 75 min: {best['transitions_per_s'] * 4500:,.0f}")
    if not math.isfinite(hours):
        raise SystemExit("no throughput measured")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
