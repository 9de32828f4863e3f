"""``exo identify``: fit the person's own twin to the assessment the exo recorded.

``exo identify --user ID [--session N]`` reads the user's assessment session from the encrypted
store (the latest one unless ``--session`` names it) and stores the result there: the profile's
identified twin (``exo user show ID``) and the session's ``identification`` artefact.
``exo identify --bag DIR`` reads a plaintext bag and stores nothing.

Either way the recording (``exo assess`` / ``exo real --assess``) is replayed on the twin with
candidate reflex parameters and prints the estimated Modified Ashworth level, the seven per-subject
parameters with 95 % intervals, the fit residual and the parameters this recording cannot identify
(``--json``: the JSON of :class:`exo.identify.result.IdentificationResult`). A fit that does not
reproduce the recording (a person who did not stay relaxed, a slipping strap) is reported with a
WARNING, and the controllers built on a user's twin refuse it until an assessment is repeated. Method and validation:
docs/identification.md. Bad input (no such bag, a bag of another controller, missing topics, NaN
data) ends with one line naming the problem and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def identify_command(
    bag: Path | None = typer.Option(None, "--bag", help="The assessment bag (session folder, rosbag2 folder or "
                                    ".mcap); or --user ID."),
    user: str = typer.Option("", "--user", help="Identify this user's twin from an assessment session of the "
                             "encrypted user store, and store it in the user's profile."),
    session: int | None = typer.Option(None, "--session", min=1, help="With --user: the assessment session "
                                       "(default: the latest)."),
    store: Path | None = typer.Option(None, "--store", help="User store folder for --user (default: $EXO_STORE, "
                                      "else ~/.local/share/exo/users)."),
    key_file: Path | None = typer.Option(None, "--key-file", help="Key file of the user store (default: "
                                         "$EXO_KEY_FILE; a passphrase store reads $EXO_PASSPHRASE)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    twin: str = typer.Option("full", help="Twin the recording is replayed on: full (MyoLeg, accurate) or "
                             "reduced (fast, biased at levels 2-3)."),
    workers: int = typer.Option(2, min=1, help="Processes for the simulations."),
    protocol: str = typer.Option("", "--protocol", help="With --bag: the protocol that ran, as JSON (fields of "
                                 "exo.assessment.AssessmentProtocol, e.g. '{\"extended_angle_rad\": 0.35}'), for a "
                                 "bag that does not say (default: the bag's metadata, else the default protocol)."),
    out: Path | None = typer.Option(None, help="Also write the JSON result to this file (with --user: a "
                                    "PLAINTEXT copy of personal data outside the store)."),
) -> None:
    """Identify the person's reflex parameters and MAS level from an assessment recording."""
    from exo.cli.errors import EXIT_BAD_INPUT, USER_ERRORS, one_line

    def fail(message: str) -> typer.Exit:
        print(f"exo identify: error: {message}", file=sys.stderr)
        return typer.Exit(EXIT_BAD_INPUT)

    from exo.twin import KINDS

    if twin not in KINDS:
        raise fail(f"--twin must be one of {', '.join(KINDS)}, got {twin!r}")
    if session is not None and not user:
        raise fail("--session goes with --user")
    if protocol and user:
        raise fail("--protocol goes with --bag (a user's session keeps the protocol it ran)")
    if (bag is None) == (not user):
        raise fail("give either --bag DIR or --user ID (with --session N), not both" if bag is not None
                   else "give --bag DIR, or --user ID for an assessment in the user store")
    try:
        if bag is not None:
            from exo.identify.report import run_identify

            run_identify(bag, json_out=json_out, twin=twin, workers=workers, out=out, echo=typer.echo,
                         protocol=_protocol(protocol) if protocol else None)
        else:
            _identify_user(user, session, store, key_file, json_out=json_out, twin=twin, workers=workers, out=out)
    except USER_ERRORS as exc:
        raise fail(one_line(exc)) from None


def _protocol(text: str):
    """The :class:`exo.assessment.AssessmentProtocol` of ``--protocol`` JSON (a ConfigError naming the problem)."""
    import json

    from exo.assessment import AssessmentProtocol
    from exo.params import ConfigError

    try:
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError("not a JSON object of protocol fields")
        return AssessmentProtocol.from_mapping(values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--protocol {text!r}: {exc}") from None


def _identify_user(user: str, session: int | None, store: Path | None, key_file: Path | None, *, json_out: bool,
                   twin: str, workers: int, out: Path | None) -> None:
    """``--user``: identify from the store, store the result, print it (and the plaintext ``--out`` copy)."""
    from exo.cli.user import open_store
    from exo.identify.records import identify_user
    from exo.identify.report import show

    opened = open_store(store, key_file)
    result, info = identify_user(opened, user, session, twin=twin, workers=workers)
    if out is not None:
        print(f"WARNING: {out} holds PLAINTEXT personal data of user {user} (outside the encrypted store); "
              "protect or delete it.", file=sys.stderr)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(result.to_json() + "\n")
    show(result, json_out, typer.echo)
    print(f"stored as the identified twin of {user} (from session {info.number}; exo user show {user}) and as "
          f"session {info.number}'s 'identification' artefact, encrypted", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("identify")(identify_command)
