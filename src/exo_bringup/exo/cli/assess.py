"""``exo assess --user ID``: the clinical assessment, run through the graph and recorded into the user's records.

The exo moves the relaxed knee through its range at 30, 90 and 180 deg/s, both ways, three times
(:mod:`exo.assessment.protocol`, about 43 s), with the safety monitor in the loop and the user's caps
from the profile. In simulation the "person" is a generated subject of the digital twin (``--twin``,
``--level``, ``--subject-seed``); on hardware the same protocol runs with ``exo real --user ID --assess``.
The recording goes into the user's encrypted records as a new session, with the per-stretch summary
printed here; ``exo identify --bag`` fits the user's own twin to it.
"""

from __future__ import annotations

from pathlib import Path

import typer


def assess(
    user: str = typer.Option(..., "--user", help="The user (a pseudonym of the store, see exo user create)."),
    twin: str = typer.Option("reduced", help="Digital twin standing in for the person: reduced or full (MyoLeg)."),
    level: int = typer.Option(1, min=0, max=3, help="Modified Ashworth level of the simulated subject."),
    subject_seed: int = typer.Option(0, help="Seed of the simulated subject (its hidden parameters)."),
    store: Path = typer.Option(None, "--store", help="User store folder (default $EXO_STORE or "
                               "~/.local/share/exo/users)."),
    key_file: Path = typer.Option(None, "--key-file", help="Store key file (default $EXO_KEY_FILE; or "
                                  "$EXO_PASSPHRASE)."),
    namespace: str = typer.Option("/exo", help="Namespace of the graph."),
    domain_id: int = typer.Option(-1, help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0)."),
    log_dir: Path = typer.Option(Path("runs/assess/logs"), help="Folder for each node's log (no personal data)."),
    startup_timeout: float = typer.Option(60.0, help="Seconds to wait for every node to come up."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Run the assessment protocol on a simulated subject and record it into the user's records."""
    from rich.console import Console

    from exo.cli.sim import run_sim_graph
    from exo.cli.user_session import recording_for
    from exo.graph import assessment_protocol
    from exo.identify.records import PROTOCOL_ARTEFACT

    console = Console(stderr=json_out)
    arguments = {"controller": "assessment", "twin": twin, "level": str(level), "subject_seed": str(subject_seed),
                 "lockstep": "true", "namespace": namespace, "user": user}
    metadata = {"twin": twin, "level": level, "subject_seed": subject_seed}
    with recording_for(console, "exo assess", user, "assessment", store, key_file, metadata) as recording:
        protocol = assessment_protocol(user)  # the one the graph runs: inside the user's range of motion
        recording.artefacts[PROTOCOL_ARTEFACT] = protocol.to_dict()
        exit_code = run_sim_graph(console, "exo assess", arguments, protocol.duration_s + 0.5, domain_id, log_dir,
                                  startup_timeout, record=recording.bag, user_id=user,
                                  session_info=f"mode=sim,assessment=true,twin={twin},level={level},"
                                               f"subject_seed={subject_seed}")
        if exit_code == 0:
            exit_code = summarise_into(console, "exo assess", recording, protocol, json_out)
    if exit_code:
        raise typer.Exit(exit_code)


def summarise_into(console, command: str, recording, protocol, json_out: bool) -> int:
    """Summarise the recorded assessment, print it and keep it with the session; the exit code (1: unusable)."""
    try:
        summary = summarise_bag(recording.bag, protocol)
    except ValueError as exc:  # a recording with gaps or bad data: stored as it is, but not summarised
        from rich.markup import escape

        console.print(f"[red]{command}: the recording cannot be used: {escape(str(exc))}; it is kept in the "
                      "records, repeat the assessment[/]")
        return 1
    recording.artefacts["assessment"] = summary.to_dict()
    print_summary(console, summary, json_out)
    return 0


def summarise_bag(bag: Path, protocol):
    """The :class:`exo.assessment.summary.AssessmentSummary` of an assessment bag."""
    from exo.assessment.summary import summarise
    from exo.identify.recording import AssessmentRecording

    rec = AssessmentRecording.from_bag(bag, protocol)
    return summarise(protocol, rec.time_s, rec.angle_rad, rec.velocity_rad_s, rec.motor_torque_nm,
                     rec.interaction_torque_nm)


def print_summary(console, summary, json_out: bool) -> None:
    """A table per (direction, speed): resistance and lag, averaged over the repetitions."""
    if json_out:
        import json

        print(json.dumps(summary.to_dict(), indent=1))
        return
    from rich.table import Table

    table = Table(title="assessment (mean of the repetitions)")
    for column in ("stretch", "speed deg/s", "reached deg/s", "resistance N m", "lag deg"):
        table.add_column(column, justify="right")
    for (direction, speed), row in summary.by_velocity().items():
        muscles = "flexors" if direction == "extend" else "extensors"
        table.add_row(f"{direction} ({muscles})", f"{speed:.0f}", f"{row['peak_velocity_deg_s']:.0f}",
                      f"{row['peak_resistance_nm']:.1f}", f"{row['lag_deg']:.1f}")
    console.print(table)
    lo, hi = summary.knee_range_deg
    console.print(f"knee range {lo:.0f}-{hi:.0f} deg, peak motor torque {summary.peak_motor_torque_nm:.1f} N m, "
                  f"{'complete' if summary.complete else 'INCOMPLETE'} ({summary.duration_s:.1f} s)")


def register(app: typer.Typer) -> None:
    app.command("assess")(assess)
