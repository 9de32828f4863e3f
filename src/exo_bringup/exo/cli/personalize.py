"""``exo personalize --user ID``: tune the user's controller on the user's own twin, gate it, version it.

Needs the user's identified twin (``exo assess --user ID``, then ``exo identify --user ID``). Searches
the hand-tuned baselines (the PID and the reflex-aware reference PID: gains, torque cap up to the
user's cap, reference speed) with CMA-ES on the user's twin, through the safety monitor with the
user's limits, then runs the acceptance gate against the deployed version on held-out subjects.
The new version is stored in the profile (``exo user show ID``) as deployed or rejected, with its
lineage, numbers and reason; ``exo user rollback ID VERSION`` deploys an earlier one again.
``exo sim/real --user ID`` run the deployed version. A run cut off (Ctrl-C, a kill) continues where
it stopped at the next ``exo personalize --user ID`` (``--restart`` starts over). Settings:
``config/personalize.yaml``; method: docs/personalisation.md.

``--users all`` (or ``--users p07,p08``) personalises many users, one task per user
(:mod:`exo.personalize.fleet`): one after another here, or as Ray tasks with ``--backend ray``
(``--ray-address`` for a cluster, docs/scaling.md); a table of every user's outcome at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from exo.cli.backend_options import BackendOption, MaxRetriesOption, RayAddressOption, backend_from_options

_STORE_HELP = "User store folder (default: $EXO_STORE, else ~/.local/share/exo/users)."
_KEY_HELP = "Key file of the user store (default: $EXO_KEY_FILE; a passphrase store reads $EXO_PASSPHRASE)."


def personalize(
    user: str = typer.Option("", "--user", help="The user (pseudonym) whose controller is tuned."),
    users: str = typer.Option("", "--users", help="Many users, one task each: all (every user with an identified "
                              "twin) or ID,ID,..."),
    budget_min: float = typer.Option(None, "--budget-min", min=0.01, help="Wall-time budget of the search, "
                                     "min (default: config/personalize.yaml, 15 min)."),
    max_evaluations: int = typer.Option(None, "--max-evaluations", min=2, help="Also stop each baseline's "
                                        "search after this many candidates (smoke runs)."),
    workers: int = typer.Option(2, min=1, help="Processes evaluating candidates (--backend ray: CPUs of the local "
                                "Ray instance, one user per CPU)."),
    restart: bool = typer.Option(False, "--restart", help="Start a new search instead of continuing an "
                                 "unfinished one."),
    from_sessions: bool = typer.Option(False, "--from-sessions", help="Between-session adaptation: adapt the "
                                       "policy from the user's recorded sessions (and the user's twin) instead of "
                                       "searching the baselines; interventions of the safety monitor are "
                                       "penalised, never imitated. Then the same gate."),
    sessions: str = typer.Option("", "--sessions", help="With --from-sessions: the session numbers, e.g. 3,4 "
                                 "(default: every sim/real recording since the last personalisation run)."),
    config: Path = typer.Option(None, "--config", help="Settings file (default config/personalize.yaml)."),
    json_out: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
    backend: BackendOption = "local",
    ray_address: RayAddressOption = "",
    max_retries: MaxRetriesOption = 3,
) -> None:
    """Tune, gate and version a user's controller on the user's identified twin (--users: many users)."""
    import json

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from exo.cli.errors import EXIT_BAD_INPUT, USER_ERRORS, one_line
    from exo.cli.user import open_store
    from exo.params import ConfigError
    from exo.personalize.run import PersonalizeConfig, personalize_user, recorded_sessions
    from exo.users import validate_user_id

    console = Console(stderr=True)
    if users:
        _personalize_many(users, user, from_sessions or bool(sessions), budget_min, max_evaluations, restart, config,
                          json_out, store, key_file, backend_from_options(backend, ray_address, workers, max_retries))
        return
    try:
        if not user:
            raise ConfigError("give --user ID (one user) or --users all|ID,ID,... (one task per user)")
        if backend != "local" or ray_address:
            backend_from_options(backend, ray_address, workers, max_retries)  # names a bad choice first
            raise ConfigError("--backend ray runs one task per user: use --users")
        validate_user_id(user)
        if sessions and not from_sessions:
            raise ConfigError("--sessions needs --from-sessions")
        settings = PersonalizeConfig.from_yaml(config)
        opened = open_store(store, key_file)
        opened.profile(user)
        chosen: list[int] | None = None
        if from_sessions:
            try:
                chosen = [int(part) for part in sessions.replace(",", " ").split()] if sessions else \
                    recorded_sessions(opened, user)
            except ValueError:
                raise ConfigError(f"--sessions must be session numbers like 3,4, got {sessions!r}") from None
    except USER_ERRORS as exc:
        print(f"exo personalize: error: {one_line(exc)}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    budget_s = (budget_min if budget_min is not None else settings.budget_min) * 60.0
    families = () if from_sessions else settings.baselines
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[best]}"),
                  TimeRemainingColumn(), console=console, transient=not console.is_terminal) as bar:
        tasks = {f: bar.add_task(f"{f:14s}", total=budget_s / max(1, len(families)), best="") for f in families}
        if settings.learned_policy or from_sessions:
            tasks["policy"] = bar.add_task(f"{'policy':14s}", total=settings.policy.transitions, best="")

        def progress(family: str, state, family_budget_s: float) -> None:
            bar.update(tasks[family], completed=min(state.elapsed_s, family_budget_s),
                       best=f"{state.evaluations} candidates, best cost {state.best[1]:.3f}")

        def policy_progress(done: int, total: int) -> None:
            bar.update(tasks["policy"], completed=done, best=f"{done:,}/{total:,} transitions")

        try:
            outcome = personalize_user(opened, user, settings, budget_s=budget_s, max_evaluations=max_evaluations,
                                       workers=workers, resume=not restart, progress=progress,
                                       policy_progress=policy_progress, from_sessions=chosen)
        except USER_ERRORS as exc:
            print(f"exo personalize: error: {one_line(exc)}", file=sys.stderr)
            raise typer.Exit(EXIT_BAD_INPUT) from None
    if json_out:
        typer.echo(json.dumps(outcome.to_dict(), indent=1))
        return
    v, verdict = outcome.version, outcome.verdict
    typer.echo(f"user {user}: version {v.id} ({v.controller}) {v.status.upper()}, parent {v.parent or 'generic'}")
    typer.echo(f"  {verdict.reason}")
    typer.echo(f"  gate on {settings.gate.subjects} held-out subjects of the user's twin (means):")
    for key, unit in (("peak_torque_nm", "N m"), ("rms_torque_nm", "N m"), ("final_error_deg", "deg"),
                      ("intervention_steps", "steps")):
        typer.echo(f"    {key:20s} candidate {verdict.candidate[key]:8.2f}   deployed {verdict.deployed[key]:8.2f} {unit}")
    for family, s in outcome.searches.items():
        best = "nothing evaluated" if s["best_cost"] is None else f"best cost {s['best_cost']:.3f}"
        typer.echo(f"  search {family}: {s['evaluations']} candidates in {s['time_s']:.0f} s, {best}")
        recorded = s.get("recorded")
        if recorded:
            typer.echo(f"    from sessions {recorded['sessions']}: {recorded['transitions']} recorded transitions, "
                       f"{recorded['intervened']} with a safety intervention (penalised)")


def _personalize_many(users: str, user: str, from_sessions: bool, budget_min: float | None,
                      max_evaluations: int | None, restart: bool, config: Path | None, json_out: bool,
                      store: Path | None, key_file: Path | None, backend) -> None:
    """``--users``: every chosen user as one task of ``backend``; a table (or JSON) of the outcomes; exit 1 if one failed."""
    import json

    from rich.console import Console
    from rich.table import Table

    from exo.cli.errors import EXIT_BAD_INPUT, USER_ERRORS, one_line
    from exo.cli.user import open_store
    from exo.params import ConfigError
    from exo.personalize.fleet import personalize_users
    from exo.personalize.run import PersonalizeConfig
    from exo.users import validate_user_id

    skipped: list[dict] = []
    try:
        if user:
            raise ConfigError("give --user or --users, not both")
        if from_sessions:
            raise ConfigError("--from-sessions adapts one user's policy from their sessions: use --user")
        settings = PersonalizeConfig.from_yaml(config)
        opened = open_store(store, key_file)
        if users.strip() == "all":
            chosen = []
            for uid in opened.users():
                if opened.profile(uid).identified_twin:
                    chosen.append(uid)
                else:
                    skipped.append({"user": uid, "status": "skipped", "version": None, "error": "",
                                    "reason": f"no identified twin yet (exo identify --user {uid})"})
        else:
            chosen = [validate_user_id(part.strip()) for part in users.split(",") if part.strip()]
            for uid in chosen:
                opened.profile(uid)
        if not chosen:
            raise ConfigError(f"--users {users}: no user to personalise in {opened.root}")
    except USER_ERRORS as exc:
        print(f"exo personalize: error: {one_line(exc)}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    console = Console(stderr=json_out)

    def show(row: dict) -> None:
        console.print(f"{row['status']:>9s}  {row['user']}  {row['version'] or ''}  {row['reason'] or row['error']}")

    budget_s = budget_min * 60.0 if budget_min is not None else None
    try:
        rows = personalize_users(opened.root, key_file, chosen, settings, backend=backend, budget_s=budget_s,
                                 max_evaluations=max_evaluations, resume=not restart, on_user=show)
    except USER_ERRORS as exc:
        print(f"exo personalize: error: {one_line(exc)}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    rows = rows + skipped
    if json_out:
        typer.echo(json.dumps(rows, indent=1))
    else:
        table = Table(title=f"personalisation of {len(chosen)} user(s) on {backend.name}")
        for column in ("user", "outcome", "version", "reason"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["user"], row["status"], row["version"] or "-", row["reason"] or row["error"])
        console.print(table)
    failed = [r["user"] for r in rows if r["status"] == "failed"]
    if failed:
        print(f"exo personalize: {len(failed)} user(s) failed: {', '.join(failed)}", file=sys.stderr)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("personalize")(personalize)
