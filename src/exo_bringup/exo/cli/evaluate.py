"""``exo eval`` (controller evaluation over generated subjects) and ``exo tune-pid`` (Ziegler–Nichols)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from exo.cli.backend_options import (
    BackendOption,
    MaxRetriesOption,
    RayAddressOption,
    backend_from_options,
)

if TYPE_CHECKING:
    from exo.control import ControllerSpec


def _parse_levels(first: list[str], extra: list[str]) -> tuple[int, ...]:
    """Levels from ``--levels 0 1 2 3``, ``--levels 0,1,2,3`` or repeated ``--levels``."""
    tokens = [part for item in [*first, *extra] for part in str(item).split(",") if part.strip()]
    try:
        levels = tuple(int(token) for token in tokens)
    except ValueError:
        raise typer.BadParameter(f"levels must be integers 0-3, got {' '.join(tokens)}") from None
    if not levels or any(level not in (0, 1, 2, 3) for level in levels):
        raise typer.BadParameter(f"levels must be in 0-3, got {levels}")
    return tuple(dict.fromkeys(levels))


def _scalar(text: str) -> bool | int | float | str:
    """A command-line value as bool, int, float (``1e9`` included) or string."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values become bool, int, float or string (:func:`_scalar`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = _scalar(value)
    return out


def _check_controller(spec: ControllerSpec, config: Path | None, key: str, overrides: list[str]) -> None:
    """Build the controller once, so that a parameter or policy it refuses is reported before any trial.

    Raises:
        exo.params.ConfigError: naming the controller, where its parameters came from and the problem.
    """
    from exo.params import ConfigError

    try:
        spec()
    except (TypeError, ValueError, OSError) as exc:
        origin = f"entry {key!r} of {config or 'config/controllers.yaml'}"
        if overrides:
            origin += ", " + " ".join(f"-p {item}" for item in overrides)
        if "policy" in spec.params:
            origin += f", policy {spec.params['policy']}"
        raise ConfigError(f"controller {spec.name!r} cannot be built from {origin}: {exc}") from None


def _check_env_params(env_kwargs: dict[str, Any]) -> None:
    """Refuse ``--env-param`` overrides the env config does not have or cannot take (ConfigError)."""
    from exo.envs.config import load_env_config
    from exo.params import ConfigError

    overrides = {k: v for k, v in env_kwargs.items() if k != "terminate_on_unsafe"}
    if not overrides:
        return
    try:
        load_env_config().with_overrides(**overrides)
    except ConfigError as exc:
        raise ConfigError(f"--env-param: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--env-param {' '.join(f'{k}={v}' for k, v in overrides.items())}: {exc}") from None


def eval_command(
    ctx: typer.Context,
    controller: Annotated[str, typer.Option(help="Registered controller name (pid, zero, ...).")] = "pid",
    policy: Annotated[
        str, typer.Option(help="Exported policy folder or file for --controller sac (= -p policy=PATH).")
    ] = "",
    twin: Annotated[str, typer.Option(help="Digital twin: reduced or full.")] = "reduced",
    levels: Annotated[
        list[str] | None, typer.Option(help="Spasticity levels: --levels 0 1 2 3 (or 0,1,2,3); default all.")
    ] = None,
    trials: Annotated[int, typer.Option(min=1, help="Generated subjects per level.")] = 10,
    seed: Annotated[
        int, typer.Option(help="Master seed; subject seeds derive from (seed, level, trial).")
    ] = 0,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/eval"),
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (--backend ray: CPUs of the local Ray instance).")
    ] = 2,
    backend: BackendOption = "local",
    ray_address: RayAddressOption = "",
    max_retries: MaxRetriesOption = 3,
    max_steps: Annotated[
        int, typer.Option(min=0, help="Control steps per trial (0 = the env's episode length).")
    ] = 0,
    timeseries_per_level: Annotated[
        int, typer.Option(min=0, help="Trials per level kept in timeseries.npz.")
    ] = 3,
    settling_method: Annotated[
        str, typer.Option(help="Settling time: band (2 % band) or rolling_std.")
    ] = "band",
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Controller parameter override KEY=VALUE.")
    ] = None,
    controllers_config: Annotated[
        Path | None, typer.Option(help="Controller parameter file (default config/controllers.yaml).")
    ] = None,
    env_param: Annotated[
        list[str] | None,
        typer.Option(
            "--env-param",
            help="Env config override KEY=VALUE, e.g. termination_interaction_nm=60 (threshold of the unsafe flag).",
        ),
    ] = None,
    params_key: Annotated[
        str,
        typer.Option(
            help="Entry of the parameter file to use (default: the controller name), e.g. pid_zn_no_overshoot."
        ),
    ] = "",
) -> None:
    """Evaluate a controller on N generated subjects per spasticity level; write summary, CSV, plots.

    Bad input (unknown level, twin, controller or backend, a controller or env parameter the
    controller/env refuses, a missing or unloadable policy, a malformed parameter file, a Ray
    address that cannot be reached) ends with one line naming the problem and exit code 2
    before any trial runs. The numbers do not depend on --backend or --workers.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Table

    from exo.backends import session
    from exo.control import ControllerSpec, available_controllers, load_controller_params
    from exo.evaluate import EvalConfig, evaluate, write_report
    from exo.params import ConfigError

    console = Console()
    execution = backend_from_options(backend, ray_address, workers, max_retries)
    level_tuple = _parse_levels(levels or ["0", "1", "2", "3"], list(ctx.args))
    if controller not in available_controllers():
        raise typer.BadParameter(
            f"unknown controller {controller!r}; available: {', '.join(available_controllers())}"
        )
    if twin not in ("reduced", "full"):
        raise typer.BadParameter(f"--twin must be reduced or full, got {twin!r}")
    if settling_method not in ("band", "rolling_std"):
        raise typer.BadParameter(f"--settling-method must be band or rolling_std, got {settling_method!r}")
    params = {
        **load_controller_params(controller, controllers_config, params_key or None),
        **_parse_params(param or []),
    }
    if policy:
        if "policy" not in params and controller != "sac":
            raise typer.BadParameter(f"--policy is for --controller sac, not {controller!r}")
        if not Path(policy).exists():
            raise ConfigError(f"--policy {policy}: no such file or folder")
        params["policy"] = policy
    spec = ControllerSpec(controller, params)
    _check_controller(spec, controllers_config, params_key or controller, param or [])
    env_kwargs = _parse_params(env_param or [])
    _check_env_params(env_kwargs)
    config = EvalConfig(
        twin=twin,
        levels=level_tuple,
        trials=trials,
        seed=seed,
        workers=workers,
        max_steps=max_steps or None,
        timeseries_per_level=timeseries_per_level,
        settling_method=settling_method,  # type: ignore[arg-type]
        env_kwargs=env_kwargs,
    )
    columns = (
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with session(execution):  # connect to Ray (or start it) before the clock starts
        started = time.perf_counter()
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"{controller} on {twin} ({execution.name})", total=len(level_tuple) * trials)
            report = evaluate(spec, config, progress=lambda done, total: bar.update(task, completed=done),
                              backend=execution)
        elapsed = time.perf_counter() - started
    write_report(report, out, extra={"wall_time_s": round(elapsed, 2), "backend": execution.describe()})

    table = Table(
        title=f"{controller} on the {twin} twin, {trials} trials/level ({elapsed:.1f} s) -> {out}",
        caption="means over trials (settling: settled trials only); std and medians in summary.json",
    )
    for column in (
        "level",
        "settled",
        "unsafe",
        "settle s",
        "RMS Nm",
        "peak Nm",
        "err deg",
        "overshoot deg",
        "dtau Nm/s",
    ):
        table.add_column(column, justify="right")
    for level, s in report.levels_summary().items():

        def cell(name: str, fmt: str = ".2f", s: dict[str, Any] = s) -> str:
            stats = s[name]
            return "-" if stats["count"] == 0 else f"{stats['mean']:{fmt}}"

        table.add_row(
            level,
            f"{s['settled']['fraction'] * 100:.0f} %",
            f"{s['unsafe']['fraction'] * 100:.0f} %",
            cell("settling_time_s"),
            cell("rms_torque_nm", ".1f"),
            cell("peak_torque_nm", ".1f"),
            cell("final_error_deg"),
            cell("overshoot_deg"),
            cell("torque_rate_rms_nm_s", ".0f"),
        )
    console.print(table)


def tune_pid_command(
    twin: Annotated[str, typer.Option(help="Digital twin: reduced or full.")] = "reduced",
    level: Annotated[int, typer.Option(min=0, max=3, help="Spasticity level of the tuning subject.")] = 1,
    seed: Annotated[
        int, typer.Option(help="Seed of the tuning subject (nominal level parameters, no noise).")
    ] = 0,
    out: Annotated[Path, typer.Option(help="Output folder (ziegler_nichols.json).")] = Path("runs/tune-pid"),
    offset_rad: Annotated[
        float, typer.Option(help="Initial offset from the target, rad (oscillation amplitude).")
    ] = 0.05,
    duration_s: Annotated[float, typer.Option(help="Length of each P-only experiment, s.")] = 3.0,
    kp_start: Annotated[float, typer.Option(help="First P gain tried, N m/rad.")] = 50.0,
    target_rad: Annotated[
        float, typer.Option(help="Target knee angle, rad (default: the task's, config/env.yaml).")
    ] = float("nan"),
    sustained_ratio: Annotated[
        float, typer.Option(help="Per-cycle amplitude ratio counted as a sustained oscillation.")
    ] = 0.99,
    hold_bias: Annotated[
        bool, typer.Option(help="Add the holding torque at the target to the P law (comparison only).")
    ] = False,
    rel_tol: Annotated[float, typer.Option(help="Stop bisecting when kp_high/kp_low < 1 + rel_tol.")] = 0.01,
) -> None:
    """Ziegler–Nichols ultimate-gain tuning of the PID on a twin; writes Ku, Tu, experiments and gains."""
    from rich.console import Console
    from rich.table import Table

    from exo.control.ziegler_nichols import tune_on_twin
    from exo.records import git_info, json_safe, versions

    console = Console()
    if twin not in ("reduced", "full"):
        raise typer.BadParameter(f"--twin must be reduced or full, got {twin!r}")

    def show(run: Any) -> None:
        console.print(
            f"kp={run.kp:9.2f} N m/rad  r={run.amplitude_ratio:7.4f}/cycle  period={run.period_s * 1e3:6.1f} ms"
            f"  swings={run.n_swings:3d}{'  (saturated)' if run.saturated else ''}"
        )

    started = time.perf_counter()
    if math.isnan(target_rad):
        from exo.envs.config import load_env_config

        target_rad = load_env_config().target_knee_angle_rad
    try:
        result = tune_on_twin(
            twin,
            level,
            seed,
            target_rad=target_rad,
            offset_rad=offset_rad,
            duration_s=duration_s,
            kp_start=kp_start,
            rel_tol=rel_tol,
            sustained_ratio=sustained_ratio,
            hold_bias=hold_bias,
            progress=show,
        )
    except RuntimeError as exc:  # no bracket: report the finding, not a traceback
        console.print(f"[red]Ziegler–Nichols search failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    document = {
        **result.to_dict(),
        "git": git_info(),
        "versions": versions(),
        "wall_time_s": round(time.perf_counter() - started, 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "ziegler_nichols.json"
    path.write_text(json.dumps(json_safe(document), indent=2, allow_nan=False))

    table = Table(
        title=f"Ziegler–Nichols on the {twin} twin, level {level}: Ku={result.ku:.1f} N m/rad, "
        f"Tu={result.tu_s * 1e3:.1f} ms -> {path}"
    )
    for column in ("rule", "kp N m/rad", "ki N m/(rad s)", "kd N m s/rad"):
        table.add_column(column, justify="right")
    for rule, gains in result.gains.items():
        table.add_row(rule, f"{gains['kp']:.2f}", f"{gains['ki']:.2f}", f"{gains['kd']:.4f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``exo eval`` and ``exo tune-pid``."""
    app.command(
        "eval",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
    )(eval_command)
    app.command("tune-pid")(tune_pid_command)
