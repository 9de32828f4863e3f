"""``exo user ...``: the encrypted per-user store (see ``docs/user-store.md``).

- ``exo user init-key [--key-file PATH]``: a new random 32-byte key file (0600; never overwrites).
- ``exo user create ID [--mas 0-3] [--torque-cap NM] [--joint-min-rad R] [--joint-max-rad R] [--slew-rate NM_S]``
- ``exo user list [--json]``, ``exo user show ID [--json]``
- ``exo user set ID [--mas ...] [--torque-cap ...] ... [--clear NAME]``: change the rating or the caps.
- ``exo user assistance ID [--level L] [--floor F] [--error-tolerance-deg D] ...``: the therapist sets the
  assist-as-needed level and schedule (:mod:`exo.users.assistance`).
- ``exo user adapt ID --session N [--contribution C]``: the assist-as-needed rule applied to a recorded
  session (its final error and safety interventions from the bag): the next session's level.
- ``exo user delete ID [--yes]``: the user's whole folder, after confirmation.
- ``exo user rotate-key --new-key-file PATH | --to-passphrase``: re-encrypt every file with a new key.

Every command takes ``--store DIR`` (``$EXO_STORE``, default ``~/.local/share/exo/users``) and
``--key-file PATH`` (``$EXO_KEY_FILE``); a passphrase store reads ``$EXO_PASSPHRASE`` or asks on
the terminal. Opening the store first recovers recordings that were killed. Bad input (an
invalid id, a cap out of range, a wrong key, a damaged file) ends with one line naming the
problem and exit code 2 (:mod:`exo.cli.errors`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

user_app = typer.Typer(
    name="user",
    help="The encrypted per-user store: pseudonymous users, their caps, sessions and key.",
    no_args_is_help=True,
)

_STORE_HELP = "Store folder (default: $EXO_STORE, else ~/.local/share/exo/users)."
_KEY_HELP = "Key file of the store (default: $EXO_KEY_FILE, else ~/.config/exo/user-store.key if it exists)."
#: Environment variable holding the new passphrase of ``rotate-key --to-passphrase``.
ENV_NEW_PASSPHRASE = "EXO_NEW_PASSPHRASE"
#: ``--clear`` names: the MAS rating and each cap.
CLEARABLE = ("mas", "torque_cap_nm", "joint_min_angle_rad", "joint_max_angle_rad", "max_slew_rate_nm_per_s")
_CLEAR_HELP = f"Unset one of {', '.join(CLEARABLE)} (repeatable)."


def open_store(store: Path | None, key_file: Path | None, *, create: bool = False, **kwargs: Any):
    """The store at ``store`` opened with ``key_file`` (or the environment; asks on a terminal), then
    recovered: what :meth:`~exo.users.UserStore.recover` did is printed on stderr."""
    from exo.users import UserStore

    opened = UserStore.open(store, key_file=key_file, create=create, interactive=sys.stdin.isatty(),
                            recover=False, **kwargs)
    for note in opened.recover():
        typer.echo(f"exo user store: {note}", err=True)
    return opened


def _caps_text(caps) -> str:
    parts = []
    if caps.torque_cap_nm is not None:
        parts.append(f"torque {caps.torque_cap_nm:g} N m")
    if caps.joint_min_angle_rad is not None:
        parts.append(f"joint min {caps.joint_min_angle_rad:g} rad")
    if caps.joint_max_angle_rad is not None:
        parts.append(f"joint max {caps.joint_max_angle_rad:g} rad")
    if caps.max_slew_rate_nm_per_s is not None:
        parts.append(f"slew {caps.max_slew_rate_nm_per_s:g} N m/s")
    return ", ".join(parts) if parts else "none set"


def _flags(s) -> str:
    flags = [name for name, on in (("recovered", s.recovered), ("truncated", s.truncated)) if on]
    if s.ended_by:
        flags.append(f"ended by {s.ended_by}")
    return f" [{', '.join(flags)}]" if flags else ""


def _caps_from_options(base, torque_cap: float | None, joint_min: float | None, joint_max: float | None,
                       slew_rate: float | None, clear: list[str]):
    values: dict[str, float | None] = {}
    for name in clear:
        if name not in CLEARABLE:
            from exo.users import ProfileError

            raise ProfileError(f"--clear {name!r}: one of {', '.join(CLEARABLE)}")
        if name != "mas":
            values[name] = None
    for name, value in (("torque_cap_nm", torque_cap), ("joint_min_angle_rad", joint_min),
                        ("joint_max_angle_rad", joint_max), ("max_slew_rate_nm_per_s", slew_rate)):
        if value is not None:
            values[name] = value
    return base.updated(**values)


@user_app.command("init-key")
def init_key(
    key_file: Path = typer.Option(None, "--key-file", help="Where to create the key (default: $EXO_KEY_FILE, "
                                  "else ~/.config/exo/user-store.key)."),
) -> None:
    """Create a random 32-byte key file (mode 0600); an existing file is never overwritten."""
    from exo.users import ENV_KEY_FILE, create_key_file, default_key_file

    path = create_key_file(key_file or os.environ.get(ENV_KEY_FILE) or default_key_file())
    typer.echo(f"key file {path} created (mode 0600). Without it the store cannot be read: keep a copy "
               "offline, apart from the store's backups.")


@user_app.command("create")
def create(
    user_id: str = typer.Argument(..., metavar="ID", help="Pseudonym: 3-32 of a-z, 0-9, '-' (never a name)."),
    mas: int = typer.Option(None, "--mas", min=0, max=3, help="Clinician-rated Modified Ashworth level 0-3."),
    torque_cap: float = typer.Option(None, "--torque-cap", help="Torque cap, N m (0 < cap <= 100)."),
    joint_min: float = typer.Option(None, "--joint-min-rad", help="Extension limit of the user's knee, rad."),
    joint_max: float = typer.Option(None, "--joint-max-rad", help="Flexion limit of the user's knee, rad."),
    slew_rate: float = typer.Option(None, "--slew-rate", help="Fastest torque rise/reversal, N m/s."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """Add a user (the store is made on first use, locked with the key file or a passphrase)."""
    from exo.users import Caps, validate_user_id
    from exo.users.caps import safety_overrides

    validate_user_id(user_id)
    caps = _caps_from_options(Caps(), torque_cap, joint_min, joint_max, slew_rate, [])
    safety_overrides(caps, who=f"user {user_id!r}")  # the device's limits (config/safety.yaml) bound them
    opened = open_store(store, key_file, create=True)
    profile = opened.create_user(user_id, mas_level=mas, caps=caps)
    typer.echo(f"user {profile.user_id} created in {opened.root} (caps: {_caps_text(profile.caps)})")


@user_app.command("list")
def list_users(
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of lines."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """The store's users with their MAS level, caps and sessions."""
    opened = open_store(store, key_file)
    profiles = [opened.profile(u) for u in opened.users()]
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in profiles], indent=2))
        return
    if not profiles:
        typer.echo(f"no users in {opened.root}")
    for p in profiles:
        mas = "-" if p.mas_level is None else str(p.mas_level)
        typer.echo(f"{p.user_id}  created {p.created}  MAS {mas}  caps: {_caps_text(p.caps)}  "
                   f"{len(p.sessions)} session(s)")
        for s in sorted(p.sessions, key=lambda s: s.number):
            typer.echo(f"  session {s.number}: {s.kind} {s.date}{_flags(s)}")


@user_app.command("show")
def show(
    user_id: str = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", help="The whole profile as JSON."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """One user's profile: MAS level, caps, identified twin, controllers, sessions."""
    from exo.users import validate_user_id

    validate_user_id(user_id)
    p = open_store(store, key_file).profile(user_id)
    if as_json:
        typer.echo(json.dumps(p.to_dict(), indent=2))
        return
    typer.echo(f"user {p.user_id} (created {p.created})")
    typer.echo(f"  MAS level (clinician): {'not rated' if p.mas_level is None else p.mas_level}")
    typer.echo(f"  caps: {_caps_text(p.caps)} (unset caps: config/safety.yaml)")
    twin = p.identified_twin
    if twin is None:
        typer.echo("  identified twin: none")
    else:
        details = [f"{k} {twin[k]}" for k in ("method", "session", "date", "mas_level", "residual_nm") if k in twin]
        typer.echo(f"  identified twin: {', '.join(details)}")
        typer.echo(f"    params: {json.dumps(twin.get('params'))}")
    a = p.assistance
    typer.echo(f"  assistance: level {a.level:.2f} (floor {a.schedule.floor:.2f}, task tolerance "
               f"{a.schedule.error_tolerance_deg:g} deg, contribution target {a.schedule.contribution_target:g}; "
               f"{len(a.history)} change(s))")
    typer.echo(f"  controllers: {len(p.controllers) or 'none'}")
    for c in p.controllers:
        source = "-" if c.source_session is None else c.source_session
        what = " ".join(filter(None, [c.controller, c.path]))
        typer.echo(f"    {c.id} [{c.status}]: {what}, parent {c.parent or '-'}, session {source}, {c.created}")
        if c.reason:
            typer.echo(f"      {c.reason}")
    typer.echo(f"  sessions: {len(p.sessions) or 'none'}")
    for s in sorted(p.sessions, key=lambda s: s.number):
        meta = " ".join(f"{k}={v}" for k, v in s.metadata.items())
        arte = f"  artefacts: {', '.join(s.artefacts)}" if s.artefacts else ""
        typer.echo(f"    {s.number}: {s.kind} {s.date} {s.files} file(s){_flags(s)} {meta}{arte}".rstrip())


@user_app.command("set")
def set_user(
    user_id: str = typer.Argument(..., metavar="ID"),
    mas: int = typer.Option(None, "--mas", min=0, max=3, help="Clinician-rated Modified Ashworth level 0-3."),
    torque_cap: float = typer.Option(None, "--torque-cap", help="Torque cap, N m (0 < cap <= 100)."),
    joint_min: float = typer.Option(None, "--joint-min-rad", help="Extension limit of the user's knee, rad."),
    joint_max: float = typer.Option(None, "--joint-max-rad", help="Flexion limit of the user's knee, rad."),
    slew_rate: float = typer.Option(None, "--slew-rate", help="Fastest torque rise/reversal, N m/s."),
    clear: list[str] = typer.Option(None, "--clear", help=_CLEAR_HELP),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """Change a user's clinician-rated MAS level or safety caps."""
    from exo.users import validate_user_id
    from exo.users.caps import safety_overrides

    validate_user_id(user_id)
    clear = clear or []
    opened = open_store(store, key_file)
    profile = opened.profile(user_id)
    caps = _caps_from_options(profile.caps, torque_cap, joint_min, joint_max, slew_rate, clear)
    safety_overrides(caps, who=f"user {user_id!r}")  # the device's limits (config/safety.yaml) bound them
    kwargs: dict[str, Any] = {"caps": caps}
    if mas is not None or "mas" in clear:
        kwargs["mas_level"] = mas
    profile = opened.update_user(user_id, **kwargs)
    mas_text = "not rated" if profile.mas_level is None else profile.mas_level
    typer.echo(f"user {user_id}: MAS {mas_text}, caps: {_caps_text(profile.caps)}")


@user_app.command("assistance")
def assistance(
    user_id: str = typer.Argument(..., metavar="ID"),
    level: float = typer.Option(None, "--level", help="Assistance level of the next session, 0-1 (1 = full help)."),
    floor: float = typer.Option(None, "--floor", help="Least assistance level the rule may reach, 0-1."),
    error_tolerance_deg: float = typer.Option(None, "--error-tolerance-deg",
                                              help="Final knee error at which the task counts as achieved, deg."),
    contribution_target: float = typer.Option(None, "--contribution-target",
                                              help="User's own contribution (normalised agonist EMG, fraction of "
                                                   "the maximal contraction) at which a success lowers the level."),
    raise_step: float = typer.Option(None, "--raise-step", help="Rise after a failed session (per unit shortfall)."),
    lower_step: float = typer.Option(None, "--lower-step", help="Fall after a successful session."),
    max_change: float = typer.Option(None, "--max-change", help="Largest change between two sessions, 0-1."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """The therapist sets a user's assist-as-needed level and schedule (unset options are kept)."""
    from exo.users import validate_user_id

    validate_user_id(user_id)
    schedule = {k: v for k, v in {"floor": floor, "error_tolerance_deg": error_tolerance_deg,
                                  "contribution_target": contribution_target, "raise_step": raise_step,
                                  "lower_step": lower_step, "max_change_per_session": max_change}.items()
                if v is not None}
    a = open_store(store, key_file).set_assistance(user_id, level=level, schedule=schedule)
    sched = ", ".join(f"{k} {v:g}" for k, v in a.schedule.to_dict().items())
    typer.echo(f"user {user_id}: assistance level {a.level:.2f}; schedule: {sched}")


@user_app.command("adapt")
def adapt(
    user_id: str = typer.Argument(..., metavar="ID"),
    session: int = typer.Option(..., "--session", min=1, help="The recorded session to judge."),
    contribution: float = typer.Option(None, "--contribution", min=0.0, max=1.0,
                                       help="The user's own contribution measured in the session (normalised "
                                            "agonist EMG, fraction of the maximal contraction). Default: measured "
                                            "from the session's EMG when it was recorded with the intent pipeline "
                                            "(its calibration scales it); else the final error alone decides a "
                                            "fall."),
    as_json: bool = typer.Option(False, "--json", help="The decision as JSON."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """Apply the assist-as-needed rule to a recorded session: the level of the next session.

    The session's bag is analysed in a private temporary folder (exo analyze): its mean final error over
    the scored trials, and the control steps on which the safety monitor took over from the controller.
    """
    from exo.users import validate_user_id
    from exo.users.assistance import SessionOutcome

    validate_user_id(user_id)
    opened = open_store(store, key_file)
    found = session_outcome(opened, user_id, session, contribution)
    source = found.pop("contribution_source")
    outcome = SessionOutcome(**found)
    found["contribution_source"] = source
    before = opened.profile(user_id).assistance.level
    decision = opened.record_assistance(user_id, session, outcome)
    opened.put_json(user_id, session, "assistance", {"level_before": before, "level_after": decision.level,
                                                     "decision": decision.decision, **found})
    if as_json:
        typer.echo(json.dumps({"user": user_id, "session": session, "level_before": before,
                               "level_after": decision.level, "decision": decision.decision,
                               "reason": decision.reason, "outcome": found}, indent=2))
        return
    typer.echo(f"user {user_id}, session {session}: assistance {before:.2f} -> {decision.level:.2f} "
               f"({decision.decision}): {decision.reason}")
    typer.echo(f"  contribution: {source}")


def session_outcome(opened, user_id: str, session: int, contribution: float | None) -> dict[str, Any]:
    """``{final_error_deg, contribution, interventions, trials, contribution_source}`` of a stored session,
    from its bag.

    ``contribution``: the one given, else measured from the session's EMG
    (:func:`exo.intent.contribution.packets_contribution`, scaled by the calibration the intent pipeline
    starts with), else None; ``contribution_source`` says which, and why not when it could not be measured.

    Raises:
        exo.users.StoreError: the session has no bag, or no trial of it could be scored.
    """
    import math

    from exo.bags.analysis import analyze_session, intervention_steps
    from exo.bags.reader import open_session
    from exo.users import StoreError

    if opened.session(user_id, session).files == 0:
        raise StoreError(f"session {session} of user {user_id!r} holds no bag to judge")
    with opened.open_session(user_id, session) as bag:
        recorded = open_session(bag)
        analysis = analyze_session(recorded)
        interventions = intervention_steps(recorded)
        if contribution is not None:
            source = "given"
        else:
            from exo import contract
            from exo.intent.contribution import packets_contribution

            name = contract.EMG.resolved(recorded.metadata.namespace or contract.DEFAULT_NAMESPACE)
            packets = [m.msg for m in recorded.read_all({name}).get(name, [])]
            try:
                measured = packets_contribution(packets)
                contribution = measured.contribution
                source = (f"measured from the session's EMG: {measured.contribution:.2f} of a maximal contraction "
                          f"over {measured.session_s:.0f} s after the calibration")
            except ValueError as exc:
                source = f"not measured ({exc})"
    errors = [t.metrics.final_error_deg for t in analysis.trials
              if t.metrics is not None and math.isfinite(t.metrics.final_error_deg)]
    if not errors:
        raise StoreError(f"session {session} of user {user_id!r}: no trial could be scored "
                         f"({'; '.join(analysis.problems) or 'no knee-extension trial in the bag'})")
    return {"final_error_deg": float(sum(errors) / len(errors)), "contribution": contribution,
            "interventions": int(interventions), "trials": len(errors), "contribution_source": source}


@user_app.command("delete")
def delete(
    user_id: str = typer.Argument(..., metavar="ID"),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """Delete a user's whole folder: profile, sessions, artefacts (asks first, unless --yes)."""
    from exo.users import validate_user_id

    validate_user_id(user_id)
    opened = open_store(store, key_file)
    n = len(opened.sessions(user_id))
    if not yes:
        try:
            confirmed = typer.confirm(f"Delete user {user_id} and its {n} session(s) for good?", default=False)
        except typer.Abort:
            confirmed = False
        if not confirmed:
            typer.echo(f"user {user_id} not deleted", err=True)
            raise typer.Exit(1)
    opened.delete_user(user_id)
    typer.echo(f"user {user_id} deleted ({n} session(s)); copies in backups stay until those are rotated")


@user_app.command("rollback")
def rollback(
    user_id: str = typer.Argument(..., metavar="ID"),
    version: str = typer.Argument(..., metavar="VERSION", help="The controller version to deploy again (c1, c2, ...)."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help=_KEY_HELP),
) -> None:
    """Deploy an earlier controller version of a user again, unchanged (exo user show ID lists them)."""
    from exo.users import validate_user_id

    validate_user_id(user_id)
    opened = open_store(store, key_file)
    before = opened.profile(user_id).deployed
    version_now = opened.deploy_controller(user_id, version, reason=f"rolled back from {before.id}" if before else "")
    typer.echo(f"user {user_id}: controller {version_now.id} ({version_now.controller or version_now.path}) deployed"
               + (f"; {before.id} retired" if before is not None and before.id != version_now.id else ""))


@user_app.command("rotate-key")
def rotate_key(
    new_key_file: Path = typer.Option(None, "--new-key-file", help="Lock the store with this key file from now "
                                      "on (exo user init-key --key-file PATH makes one)."),
    to_passphrase: bool = typer.Option(False, "--to-passphrase", help="Lock the store with a new passphrase "
                                       f"(${ENV_NEW_PASSPHRASE}, or asked twice)."),
    store: Path = typer.Option(None, "--store", help=_STORE_HELP),
    key_file: Path = typer.Option(None, "--key-file", help="The current key file. " + _KEY_HELP),
) -> None:
    """Re-encrypt every file of the store with a new key; the old key opens nothing afterwards."""
    from exo.users import CredentialError
    from exo.users.store import prompt_new_passphrase

    if (new_key_file is None) == (not to_passphrase):
        raise CredentialError("give either --new-key-file PATH or --to-passphrase")
    opened = open_store(store, key_file, allow_interrupted_rotation=True)
    if to_passphrase:
        passphrase = os.environ.get(ENV_NEW_PASSPHRASE)
        if passphrase is None:
            if not sys.stdin.isatty():
                raise CredentialError(f"no new passphrase: set ${ENV_NEW_PASSPHRASE} (or run on a terminal)")
            passphrase = prompt_new_passphrase(f"user store {opened.root}")
        count = opened.rotate_key(new_passphrase=passphrase)
        target = "the new passphrase"
    else:
        count = opened.rotate_key(new_key_file=new_key_file)
        target = f"key file {new_key_file}"
    typer.echo(f"re-encrypted {count} file(s) of {opened.root}; it opens with {target} only. Backups made "
               "before still open with the old key.")


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
