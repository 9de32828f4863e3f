"""The Foxglove layout of the live view (``config/foxglove/exo.json``), built from the contract.

Built with foxglove-sdk's layout types (:mod:`foxglove.layouts`), so panel configurations follow the
SDK's schema and every topic path comes from :mod:`exo.contract` (the committed file is checked against
this builder by the tests; regenerate it with ``python -m exo.live.layout``).

Panels: knee angle (joint_states vs the twin's target), torques (request vs command vs the straps'
interaction torques), the EMG envelope, intent, the safety state (indicator, transitions, last status
and events), and the session (the user's pseudonym). Angles are shown in rad and torques in N m, as on
the topics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import foxglove.layouts as fl

from exo import contract
from exo.intent.emg_synth import CHANNEL_NAMES
from exo.live.forward import EMG_ENVELOPE, SESSION, live_channel

#: Colours of the safety states (indicator panel), as on the console.
STATE_COLOURS = {"OK": "#2e9b4f", "LIMITING": "#c98a00", "FALLBACK": "#d2691e", "SAFE_STOP": "#c62828",
                 "ESTOP": "#c62828", "FAULT": "#c62828"}


def _plot(title: str, series: list[tuple[str, str]], y_label: str) -> fl.PlotPanel:
    return fl.PlotPanel(title=title, config=fl.PlotConfig(
        paths=[fl.PlotSeries(value=value, label=label, timestamp_method="headerStamp") for value, label in series],
        show_legend=True, y_axis_label=y_label, following_view_width=20.0))


def build_layout(namespace: str = contract.DEFAULT_NAMESPACE) -> fl.Layout:
    """The live view's layout for a graph under ``namespace``."""
    def t(topic: contract.Topic) -> str:
        return topic.resolved(namespace)

    knee = _plot("Knee angle (rad, flexion +)", [
        (f"{t(contract.JOINT_STATES)}.position[0]", "exo knee angle"),
        (f"{t(contract.SIM_TRUTH)}.target_knee_angle", "target (sim)"),
        (f"{t(contract.SIM_TRUTH)}.human_knee_angle", "human knee (sim truth)"),
    ], "rad")
    torques = _plot("Torques (N m, flexion +)", [
        (f"{t(contract.TORQUE_REQUEST)}.torque", "request (controller)"),
        (f"{t(contract.TORQUE_COMMAND)}.torque", "command (after safety)"),
        (f"{t(contract.INTERACTION_THIGH)}.wrench.torque.y", "interaction, thigh strap"),
        (f"{t(contract.INTERACTION_SHANK)}.wrench.torque.y", "interaction, shank strap"),
    ], "N m")
    emg = fl.PlotPanel(title="EMG envelope (V RMS per channel)", config=fl.PlotConfig(
        paths=[fl.PlotSeries(value=f"{live_channel(namespace, EMG_ENVELOPE)}.channels.{name}", label=name)
               for name in CHANNEL_NAMES],
        show_legend=True, y_axis_label="V", following_view_width=20.0))
    intent = _plot("Intent", [
        (f"{t(contract.INTENT)}.predicted_knee_velocity", "intended knee velocity (rad/s)"),
        (f"{t(contract.INTENT)}.confidence", "confidence"),
    ], "")
    state = fl.IndicatorPanel(title="Safety state", config=fl.IndicatorConfig(
        path=f"{t(contract.SAFETY_STATUS)}.state_name", style="background", font_size=48,
        rules=[fl.IndicatorRule(raw_value=name, operator="=", color=colour, label=name)
               for name, colour in STATE_COLOURS.items()],
        fallback_color="#6b7785", fallback_label="no status"))
    transitions = fl.StateTransitionsPanel(title="Safety state over time", config=fl.StateTransitionsConfig(
        paths=[fl.StateTransitionsSeries(value=f"{t(contract.SAFETY_STATUS)}.state_name", label="state",
                                         timestamp_method="headerStamp"),
               fl.StateTransitionsSeries(value=f"{t(contract.TORQUE_COMMAND)}.source", label="command source",
                                         timestamp_method="headerStamp")]))
    status = fl.RawMessagesPanel(title="Safety status (state, reason, limits)",
                                 config=fl.RawMessagesConfig(topic_path=t(contract.SAFETY_STATUS)))
    events = fl.RawMessagesPanel(title="Safety events", config=fl.RawMessagesConfig(topic_path=t(contract.SAFETY_EVENTS)))
    session = fl.RawMessagesPanel(title="Session (pseudonym)",
                                  config=fl.RawMessagesConfig(topic_path=live_channel(namespace, SESSION)))

    def col(*items: tuple[float, object]) -> fl.SplitContainer:
        return fl.SplitContainer(direction="column", items=[fl.SplitItem(proportion=p, content=c) for p, c in items])

    left = col((1.0, knee), (1.0, torques), (0.8, emg), (0.6, intent))
    right = col((0.4, state), (0.5, transitions), (0.8, status), (0.6, events), (0.4, session))
    return fl.Layout(content=fl.SplitContainer(direction="row", items=[fl.SplitItem(proportion=2.0, content=left),
                                                                      fl.SplitItem(proportion=1.0, content=right)]))


def layout_json(namespace: str = contract.DEFAULT_NAMESPACE) -> str:
    """The layout as the committed file holds it (indented JSON, newline at the end)."""
    return json.dumps(json.loads(build_layout(namespace).to_json()), indent=2) + "\n"


def main(argv: list[str] | None = None) -> None:
    """``python -m exo.live.layout [OUT] [--namespace NS]``: write the layout (default: print it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    namespace = contract.DEFAULT_NAMESPACE
    if "--namespace" in args:
        i = args.index("--namespace")
        namespace = args[i + 1]
        del args[i:i + 2]
    text = layout_json(namespace)
    if args:
        Path(args[0]).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
