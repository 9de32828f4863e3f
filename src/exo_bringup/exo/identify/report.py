"""The command-line core of ``exo identify``: a bag in, the person's identified twin out (typer-free).

:func:`run_identify` reads an assessment bag (:meth:`AssessmentRecording.from_bag`), identifies the
person's twin (:func:`exo.identify.fit.identify`) and prints either the JSON of
:class:`~exo.identify.result.IdentificationResult` or a short table. :func:`format_result` is the
table. Bad input raises :class:`~exo.identify.recording.RecordingError` (one line, naming the problem).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from exo.assessment.protocol import AssessmentProtocol
from exo.identify.recording import AssessmentRecording
from exo.identify.result import IdentificationResult
from exo.twin.reflex import NOISY_PARAMETERS

#: Units of the parameters (table convention of :mod:`exo.twin.reflex`).
UNITS: dict[str, str] = {
    "a_flex_deg": "deg",
    "a_ext_deg": "deg",
    "v_lim_rad_s": "rad/s",
    "l_ang": "-",
    "l_vel": "-",
    "k_ang_per_deg": "1/deg",
    "k_vel_s_per_rad": "s/rad",
}


def format_result(result: IdentificationResult) -> str:
    """A plain-text summary: level, parameters with intervals, residual, what is not identified and why."""
    lines = [f"MAS level {result.mas_level} (twin {result.twin}, {result.simulations} replays, "
             f"{result.wall_time_s:.1f} s, load {result.load_average:.1f})",
             f"{'parameter':<18}{'value':>10}{'95 % interval':>24}  unit   identified"]
    for n in NOISY_PARAMETERS:
        lo, hi = result.ci[n]
        mark = "yes" if n not in result.not_identifiable else "no"
        lines.append(f"{n:<18}{result.params[n]:>10.4g}   [{lo:>9.4g}, {hi:>9.4g}]  {UNITS[n]:<6} {mark}")
    lines.append(f"fit residual: interaction torque {result.residual_nm:.2f} N m RMS "
                 f"({result.residual_lowpass_nm:.2f} N m low-passed, repetition-averaged)")
    lines += [f"WARNING: {w}" for w in result.warnings]
    if result.not_identifiable:
        lines.append("not identifiable from this recording:")
        lines += [f"  {n}: {why}" for n, why in result.not_identifiable.items()]
    return "\n".join(lines)


def show(result: IdentificationResult, json_out: bool, echo: Callable[[str], object] = print) -> None:
    """Print ``result``: its JSON (warnings then also on stderr) or the table (warnings in it)."""
    echo(result.to_json() if json_out else format_result(result))
    if json_out:
        for warning in result.warnings:
            print(f"WARNING: {warning}", file=sys.stderr)


def run_identify(bag: Path, json_out: bool = False, twin: str = "full", workers: int = 2,
                 out: Path | None = None, echo: Callable[[str], object] = print,
                 protocol: AssessmentProtocol | None = None) -> IdentificationResult:
    """Identify the person's twin from an assessment bag and print the result.

    Args:
        bag: the bag (session folder, rosbag2 folder or ``.mcap``) of an assessment.
        json_out: print the result as JSON instead of the table.
        twin: "full" (MyoLeg, accurate) or "reduced" (fast, biased at levels 2-3).
        workers: processes for the simulations.
        out: also write the JSON here.
        echo: where the text goes (default ``print``).
        protocol: the protocol that ran (default: the bag's session metadata, else the protocol's defaults).

    Raises:
        FileNotFoundError: no such bag.
        exo.identify.recording.RecordingError: not an assessment bag, missing topics, NaN data.
    """
    from exo.identify.fit import identify

    recording = AssessmentRecording.from_bag(Path(bag), protocol)
    result = identify(recording, twin=twin, workers=workers)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(result.to_json() + "\n")
    show(result, json_out, echo)
    return result
