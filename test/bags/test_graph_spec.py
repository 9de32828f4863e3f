"""The replay mode and the recorder in the graph spec (pure Python, no processes)."""

from __future__ import annotations

import pytest

from exo import graph
from exo.runner import GraphRunner


def test_replay_mode_plays_a_bag_into_the_same_controller_and_safety_nodes():
    names = [n.name for n in graph.active_nodes("replay", graph.resolve_arguments("replay", {"bag": "b"}))]
    assert names == ["safety_monitor", "controller", "bag_player"]
    assert {"bag", "rate", "record", "record_dir", "user_id"} <= set(graph.arguments_for("replay"))
    assert "bag" not in graph.arguments_for("sim") and "lockstep" not in graph.arguments_for("replay")
    runner = GraphRunner("replay", {"bag": "bags/x", "rate": "2.5", "record": "true", "record_dir": "out/r"})
    player = runner.node("bag_player").parameters
    assert player["bag"] == "bags/x" and player["rate"] == 2.5
    recorder = runner.node("recorder")
    assert not recorder.spec.required and recorder.parameters["bag_dir"] == "out/r"
    runner.stop()  # nothing started: removes the run's folder
    with pytest.raises(ValueError, match="argument 'rate'"):
        graph.resolve_arguments("replay", {"rate": "fast"})


def test_the_recorder_is_off_unless_asked_for_in_every_mode():
    for mode in graph.MODES:
        args = graph.resolve_arguments(mode)
        assert "recorder" not in [n.name for n in graph.active_nodes(mode, args)]
        on = graph.resolve_arguments(mode, {"record": "true"})
        assert graph.active_nodes(mode, on)[0].name == "recorder"  # first: it sees everything from the start


def test_session_info_is_parsed_with_a_clear_error():
    from exo.nodes.recorder import parse_session_info
    from exo.ros.parameters import ParameterError

    assert parse_session_info("mode=sim, level=3,twin=full") == {"mode": "sim", "level": "3", "twin": "full"}
    assert parse_session_info("") == {}
    with pytest.raises(ParameterError, match="'level3' is not a key=value pair"):
        parse_session_info("mode=sim,level3")
