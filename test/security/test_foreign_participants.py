"""Attacks from outside the graph: a foreign rclpy participant (a separate process, no keys) on the domain.

Each test is a row of the security review, asserting the new behaviour: a foreign or recorded
``torque_command`` changes nothing; spoofed requests never reach the knee and are counted; fake
``joint_states`` give a sensor conflict and a safe stop; a 1 kHz flood of invalid requests does not
crowd out the controller; resetting is not a network service; a dead bridge is caught at once.
The attacker is :mod:`exo.testing.foreign_node`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from exo import contract
from exo.paths import config_file
from exo.ros.convert import from_time_msg, stamp_ns
from exo.ros.qos import qos_profile
from exo.safety import SafetyLimits
from exo.security import REQUEST_PURPOSE, MessageVerifier, Verdict
from exo.security.keys import load_secret
from exo.security.reset import request_reset

pytestmark = pytest.mark.ros

LIMITS = SafetyLimits.from_yaml(config_file("safety.yaml"))
NODES = ["sim_bridge", "controller", "safety_monitor"]
FAKE_ANGLE_RAD = 0.8125  # the foreigner's fake knee angle (exact in binary: told apart from the twin's)


def attack(processes, mode: str, namespace: str = "/exo", duration_s: float = 30.0, *args: str) -> tuple:
    """Start the foreign participant; returns (process, report path)."""
    report = processes.tmp_path / f"foreign_{mode}.json"
    log = open(processes.tmp_path / f"foreign_{mode}.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen([sys.executable, "-m", "exo.testing.foreign_node", mode, "--namespace", namespace,
                             "--duration", str(duration_s), "--report", str(report), *args],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **processes.env},
                            start_new_session=True)
    log.close()
    processes.children.append(proc)
    return proc, report


def finish(proc, report: Path) -> dict[str, int]:
    """Stop the attacker (it writes its report on the way out) and read what it sent."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    return json.loads(report.read_text())


def transitions(status) -> str:
    """The monitor's state changes in ``status`` with their reasons (for a failure message)."""
    out: list[str] = []
    for st in status:
        if not out or not out[-1].startswith(st.state_name + " "):
            out.append(f"{st.state_name} ({st.reason})")
    return "; ".join(out)


def stamps(msgs) -> np.ndarray:
    return np.array([from_time_msg(m.header.stamp) for m in msgs])


def genuine_requests(graph, requests) -> dict[int, object]:
    """The controller's own requests among what the probe saw on torque_request, by seq (verified with the run's key)."""
    verifier = MessageVerifier(load_secret(graph.secrets.file("request_key_file")), REQUEST_PURPOSE)
    out = {}
    for r in sorted(requests, key=lambda r: r.seq):
        verdict = verifier.check(stamp_ns(r.header.stamp), r.seq, r.joint, r.torque, r.source, bytes(r.mac))
        if verdict in (Verdict.OK, Verdict.DUPLICATE):
            out[r.seq] = r
    return out


def fresh_share(commands) -> float:
    """The share of steps decided by the controller with a request newer than the previous step's.

    A step decided on the request deadline with the previous step's request repeats its ``request_seq``;
    one decided by a fallback has another source. Steps are told apart by their stamps (a lockstep bridge
    may offer a sample twice).
    """
    steps = [c for _, c in sorted(first_per_stamp(commands).items())]
    fresh = sum(c.source == "pid" and c.request_seq > prev.request_seq for prev, c in zip(steps, steps[1:], strict=False))
    return fresh / max(1, len(steps) - 1)


def stale_steps(steps, answered: dict[int, float]) -> list[str]:
    """The steps not decided on a fresh request of the controller, with what the probe saw (a failure's message).

    ``steps``: (stamp s, command) in time order; ``answered``: the controller's requests the probe saw,
    seq -> stamp (s). ``asked=yes``: the controller did answer that step, so the monitor lost or missed
    its request; ``asked=no``: the probe saw no answer (the controller missed the sample, or the probe
    missed the request).
    """
    asked = set(answered.values())
    out = []
    for (_, prev), (t, c) in zip(steps, steps[1:], strict=False):
        if not (c.source == "pid" and c.request_seq > prev.request_seq):
            out.append(f"t={t:.3f} s {c.source} seq={c.request_seq} asked={'yes' if t in asked else 'no'}")
    return out


def first_per_stamp(commands) -> dict[float, object]:
    out: dict[float, object] = {}
    for c in commands:
        out.setdefault(from_time_msg(c.header.stamp), c)
    return out


def run_pair(processes, ros_domain, mode: str, until_s: float = 3.0, *attack_args: str):
    """Two lockstep PID runs with the same seed, one after the other; the foreigner attacks the first.

    Returns ({namespace: (commands, joint_states)}, attacker report). Lockstep is deterministic, so
    whatever the attack changed shows as a difference between the two. (One after the other, not side by
    side: two graphs, the foreigner and two probes on two cores drop best-effort sensor samples, and a
    lockstep graph that loses one waits for its command and advances on its timeout.)
    """
    from exo.testing.probe import RosProbe

    series, sent = {}, {}
    for ns in ("/exo_a", "/exo_b"):
        probe = RosProbe(ros_domain, ns, name=f"probe_{ns.strip('/')}", events=True)
        graph = processes.graph("sim", start=False, controller="pid", level="2", subject_seed="7",
                                lockstep="true", namespace=ns)
        try:
            # the probe reads torque_command with the actuator side's deep queue: the foreigner's messages on
            # the same topic must not push the monitor's out of the probe's own history either
            commands = probe.subscribe(contract.TORQUE_COMMAND, qos=qos_profile(contract.TORQUE_COMMAND, reader=True))
            joint = probe.subscribe(contract.JOINT_STATES)
            graph.start([n.name for n in graph.nodes if n.name != "sim_bridge"])
            probe.wait_for_nodes(["controller", "safety_monitor"], timeout_s=60.0, graph=graph)
            proc = None
            if ns == "/exo_a":
                proc, report = attack(processes, mode, ns, 120.0, *attack_args)
                time.sleep(2.0)  # the foreigner discovers the graph first
            graph.start(["sim_bridge"])
            probe.wait_for(lambda joint=joint: bool(joint) and from_time_msg(joint[-1].header.stamp) >= until_s,
                           120.0, f"{until_s} s of sim time in {ns}")
            graph.check()
            if proc is not None:
                sent = finish(proc, report)
            series[ns] = (list(commands), list(joint))
        finally:
            probe.close()
            graph.stop()  # the sim bridge writes its guard's summary line
    return series, sent


def guard_summary(logs: Path, namespace: str) -> dict[str, str]:
    """The counters of the sim bridge's actuator guard, from its shutdown summary line."""
    line = next(x for x in (logs / namespace / "sim_bridge.log").read_text().splitlines() if "actuator guard:" in x)
    items = line.split("actuator guard: ", 1)[1].split(", ")
    return dict(item.split(" ", 1) for item in items)


def assert_identical(series: dict, until_s: float, logs: Path) -> None:
    """The monitors' commands (the probe also sees the foreigner's: they carry no or a forged MAC, or
    are copies of old ones) and the knee angles of the two graphs are identical."""
    (ca, ja), (cb, jb) = series.values()
    a, b = first_per_stamp(c for c in ca if c.request_seq), first_per_stamp(c for c in cb if c.request_seq)
    common = sorted(t for t in set(a) & set(b) if t < until_s)
    assert len(common) >= 200, f"only {len(common)} common steps"
    for t in common:
        assert (a[t].torque, a[t].source) == (b[t].torque, b[t].source), f"t={t:.2f} s: {a[t]} vs {b[t]}"
    pa = {from_time_msg(j.header.stamp): j.position[0] for j in ja}
    pb = {from_time_msg(j.header.stamp): j.position[0] for j in jb}
    assert max(pa.values()) <= LIMITS.joint_max_angle_rad
    # the knees too, unless the machine was so loaded that a bridge advanced without its command
    # (lockstep_timeout_s: it then applies the previous command, attacked or not, and the runs part)
    timeouts = [ns for ns in ("exo_a", "exo_b") if "advancing with the actuator model" in
                (logs / ns / "sim_bridge.log").read_text()]
    if not timeouts:
        knees = sorted(set(pa) & set(pb))
        different = [t for t in knees if pa[t] != pb[t]]
        assert not different, f"the attacked knee moved differently from t={different[0]:.2f} s"


def test_a_foreign_torque_command_changes_nothing(processes, ros_domain):
    """100 N m on torque_command for every step (some stamped 5 s ahead, some with forged MACs)."""
    # 5 s of sim time: a probe that matched the monitor's publisher late on a busy machine still sees 200 steps
    series, sent = run_pair(processes, ros_domain, "command", 5.0)  # (the foreigner never sets request_seq)
    assert sum(sent.values()) >= 100, sent
    assert_identical(series, 5.0, processes.tmp_path / "logs")
    counts = guard_summary(processes.tmp_path / "logs", "exo_a")
    assert int(counts["refused_commands.unauthenticated"]) >= 50 and int(counts["refused_commands.bad_mac"]) >= 50
    assert "refused_commands" in guard_summary(processes.tmp_path / "logs", "exo_b")
    assert guard_summary(processes.tmp_path / "logs", "exo_b")["refused_commands"] == "0"


def test_a_recorded_command_played_again_changes_nothing(processes, ros_domain):
    """The monitor's own signed commands, played again (old sequence numbers) and tampered with."""
    series, sent = run_pair(processes, ros_domain, "replay", 5.0)
    assert sent.get("command replayed", 0) >= 100, sent
    assert_identical(series, 5.0, processes.tmp_path / "logs")
    counts = guard_summary(processes.tmp_path / "logs", "exo_a")
    assert int(counts["refused_commands.out_of_sequence"]) >= 50 and int(counts["refused_commands.bad_mac"]) >= 50


def test_spoofed_requests_never_reach_the_knee_and_are_security_events(processes, probe):
    """Requests with ``source: pid`` stamped for the next step; forged and tampered copies of the controller's."""
    graph = processes.graph("sim", start=False, controller="pid", level="1", lockstep="true")
    commands, requests = probe.subscribe(contract.TORQUE_COMMAND), probe.subscribe(contract.TORQUE_REQUEST)
    status = probe.subscribe(contract.SAFETY_STATUS)
    graph.start(["controller", "safety_monitor"])
    probe.wait_for_nodes(["controller", "safety_monitor"], timeout_s=60.0, graph=graph)
    proc, report = attack(processes, "request", "/exo", 60.0, "--torque", "-65")
    time.sleep(2.0)  # the foreigner discovers the graph before the lockstep run starts
    graph.start(["sim_bridge"])
    probe.wait_for_nodes(NODES, timeout_s=60.0, graph=graph)
    probe.wait_for(lambda: len(commands) >= 400, 120.0, "400 commands")
    sent = finish(proc, report)
    probe.spin_for(0.5)
    assert sent.get("request next step", 0) >= 100, sent
    genuine = genuine_requests(graph, requests)
    passed = [c for c in commands if c.source == "pid"]
    assert len(passed) >= 0.95 * len(commands), {c.source for c in commands}
    for c in passed:  # no command carries the foreigner's torque, whatever its label
        assert c.torque != -65.0 and abs(c.torque) <= LIMITS.user_torque_cap_nm
    # every command the controller's label carries came from one of its own requests, for that very step
    # (of those the probe saw: on a loaded machine it may miss a best-effort sample)
    seen = [c for c in passed if c.request_seq in genuine]
    assert len(seen) >= 0.9 * len(passed), (len(seen), len(passed))
    for c in seen:
        assert from_time_msg(genuine[c.request_seq].header.stamp) == from_time_msg(c.header.stamp), c
    last = status[-1]
    assert last.security_events >= 100 and "torque_request" in last.last_security_event
    states = {s.state_name for s in status}
    assert states <= {"OK", "LIMITING", "SAFE_STOP"}, states


def test_fake_joint_states_give_a_sensor_conflict_and_a_latched_safe_stop(processes, probe):
    """A second joint_states publisher (0.8 rad) with spoofed 70 N m requests (lockstep sim: a real-time sim
    on a loaded machine may stall past its stall grace and give a stale-data stop before the attack)."""
    graph = processes.graph("sim", controller="pid", level="1", lockstep="true")
    commands, status, truth = (probe.subscribe(t) for t in (contract.TORQUE_COMMAND, contract.SAFETY_STATUS,
                                                             contract.SIM_TRUTH))
    events, joint = probe.subscribe(contract.SAFETY_EVENTS), probe.subscribe(contract.JOINT_STATES)
    probe.wait_for_nodes(NODES, timeout_s=60.0, graph=graph)
    probe.wait_for(lambda: any(c.source == "pid" for c in commands), 60.0, "the controller in charge")
    proc, report = attack(processes, "joint", "/exo", 60.0, "--torque", "70", "--angle", str(FAKE_ANGLE_RAD))
    # detected as a second joint_states publisher (counted every 0.2 s) or as a knee angle the IMUs
    # contradict (30 ms), whichever comes first: either is a sensor conflict
    try:
        probe.wait_for(lambda: status and status[-1].state_name == "SAFE_STOP"
                       and "sensor conflict" in status[-1].reason, 30.0, "a safe stop for the sensor conflict")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; the monitor's states: {transitions(status)}") from exc
    t_stop = from_time_msg(status[-1].header.stamp)
    # a second publisher is seen as soon as it exists; its samples follow once it has heard /clock
    probe.wait_for(lambda: sum(j.position[0] == FAKE_ANGLE_RAD for j in joint) >= 20, 30.0, "20 fake samples")
    probe.spin_for(1.0)
    sent = finish(proc, report)
    assert sent.get("joint sample", 0) >= 20, sent
    states = [s.state_name for s in status]
    assert "FALLBACK" in states, states  # first the fallback, then the latched stop
    assert any(e.kind_name == "SECURITY" and ("publishers on joint_states" in e.detail or "from the IMUs" in e.detail)
               for e in events), [e.detail for e in events]
    later = [c for c in commands if from_time_msg(c.header.stamp) > t_stop]
    assert later and all(c.source == "safe_stop" and abs(c.torque) <= LIMITS.safe_stop_torque_cap_nm
                         for c in later)
    assert max(m.exo_knee_angle for m in truth) <= LIMITS.joint_max_angle_rad
    graph.check()


def test_a_flood_of_invalid_requests_does_not_crowd_out_the_controller(processes, probe):
    """1 kHz of NaN, inf, 1e9 N m, stale, future and forged requests next to the PID (lockstep sim).

    Crowding out would show as steps decided without the controller's own answer: on its request
    deadline, with the previous step's request (a lockstep run never starves, so the *source* alone
    would not tell). At least 99 % of the steps (or, on a busy machine, the share without the flood less
    2 points) must pass a fresh request of the controller, and the very one for that step.
    """
    graph = processes.graph("sim", controller="pid", level="1", lockstep="true")
    commands = probe.subscribe(contract.TORQUE_COMMAND)
    # the monitor's deep queue: the flood must not push the controller's requests out of the probe's view either
    requests = probe.subscribe(contract.TORQUE_REQUEST, qos=qos_profile(contract.TORQUE_REQUEST, reader=True))
    status = probe.subscribe(contract.SAFETY_STATUS)
    probe.wait_for_nodes(NODES, timeout_s=60.0, graph=graph)
    probe.wait_for(lambda: any(c.source == "pid" for c in commands), 60.0, "the controller in charge")
    # the same share without the flood, on this machine at this moment (a busy machine alone makes the
    # controller miss some deadlines; the flood must not add to that)
    before = len(commands)
    probe.wait_for(lambda: len(first_per_stamp(commands[before:])) >= 300, 60.0, "300 steps without the flood")
    baseline = fresh_share(commands[before:])
    proc, report = attack(processes, "flood", "/exo", 120.0, "--rate-hz", "1000")

    def flood() -> int:  # the foreigner's requests the probe saw (their sequence numbers start at 10**6)
        return sum(r.seq >= 10**6 for r in requests)

    probe.wait_for(lambda: flood() >= 200, 60.0, "the flood")
    start, flood_start = len(commands), flood()
    # at least 3000 flood requests (4 s at 750 per second on a quiet machine; longer when the machine is busy)
    probe.wait_for(lambda: flood() - flood_start >= 3000, 90.0, "3000 flood requests")
    window = commands[start:]
    sent = finish(proc, report)
    probe.spin_for(0.5)
    assert sum(sent.values()) >= 3000, sent
    steps = sorted(first_per_stamp(window).items())
    assert len(steps) >= 100, len(steps)
    share = fresh_share(window)
    answered = {seq: from_time_msg(r.header.stamp) for seq, r in genuine_requests(graph, requests).items()}
    assert share >= min(0.99, baseline - 0.02), (share, baseline, len(steps), stale_steps(steps, answered)[:10])
    # and where the probe also saw the controller's request (next to a 1 kHz flood on a loaded machine it
    # may miss one): that very request, for that very step
    judged = [(t, c) for t, c in steps if c.request_seq in answered]
    own = sum(answered[c.request_seq] == t for t, c in judged)
    assert len(judged) >= 50 and own / len(judged) >= 0.99, (len(judged), own)
    assert status[-1].security_events >= 1000
    graph.check()


def test_resetting_is_not_a_network_service_and_needs_the_runs_token(processes, probe):
    graph = processes.graph("sim", controller="pid", level="1", lockstep="true", record="true",
                            record_dir=str(processes.tmp_path / "bag"))
    commands, status = probe.subscribe(contract.TORQUE_COMMAND), probe.subscribe(contract.SAFETY_STATUS)
    probe.wait_for_nodes(NODES, timeout_s=60.0, graph=graph)
    probe.wait_for(lambda: len(commands) >= 50, 60.0, "50 commands")
    # anyone may stop the knee ...
    assert probe.call("std_srvs/srv/Trigger", contract.ESTOP_SERVICE).success
    probe.wait_for(lambda: commands[-1].source == "estop", 10.0, "e-stop commands")
    # ... but nobody on the network can reset it: the service does not exist
    with pytest.raises(TimeoutError):
        probe.call("std_srvs/srv/Trigger", "safety/reset", timeout_s=2.0)
    # a local client with another token is refused, and that is a security event
    from exo.security.keys import RunSecrets

    other = RunSecrets.create("/exo", 0, root=processes.tmp_path / "other")
    (other.folder / "reset.sock").symlink_to(graph.secrets.folder / "reset.sock")
    ok, message = request_reset(other.folder, "intruder")
    assert not ok and "wrong reset token" in message
    probe.spin_for(0.5)
    assert commands[-1].source == "estop"
    counters = (status[-1].transitions, status[-1].security_events)
    assert counters[1] >= 1
    # the run's own token, as `exo reset` reads it: accepted; the counters stay
    result = subprocess.run([sys.executable, "-m", "exo.cli.main", "reset", "--run-dir",
                             str(graph.secrets.folder), "--operator", "test"], capture_output=True, text=True,
                            env={**os.environ, **processes.env}, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cleared e-stop" in result.stdout
    probe.wait_for(lambda: commands[-1].source == "pid", 10.0, "the controller back in charge")
    probe.spin_for(0.5)
    assert status[-1].transitions > counters[0] and status[-1].security_events >= counters[1]
    graph.stop()
    from exo.bags.reader import open_session

    events = open_session(processes.tmp_path / "bag").read_all({"/exo/safety/events"})["/exo/safety/events"]
    kinds = [(e.msg.kind_name, e.msg.origin) for e in events]
    assert ("ESTOP", "safety/estop") in kinds and ("SECURITY", "local reset") in kinds
    assert any(k == "RESET" and "exo reset by test" in o for k, o in kinds), kinds


def test_a_dead_bridge_is_a_safe_stop_within_a_tenth_of_a_second_in_real_time(processes, probe):
    commands, joint = probe.subscribe(contract.TORQUE_COMMAND), probe.subscribe(contract.JOINT_STATES)
    graph = processes.graph("sim", controller="pid", level="1", lockstep="false", paused="true")
    probe.wait_for_nodes(NODES, timeout_s=60.0, graph=graph)
    probe.start_source()  # once the probe has matched: it must see the last sample before the kill
    # past the monitor's stall_warmup_s (1 s of sensor time: a simulator's first steps may be slow)
    # and the controller in charge for at least 1 s (100 commands) before the bridge dies
    probe.wait_for(lambda: joint and from_time_msg(joint[-1].header.stamp) >= 2.0
                   and sum(c.source == "pid" for c in commands) >= 100, 60.0, "2 s of sim time and 100 PID commands")
    graph.kill("sim_bridge", signal.SIGKILL)
    probe.wait_for(lambda: commands[-1].source == "safe_stop", 10.0, "a safe stop")
    last_sample = from_time_msg(joint[-1].header.stamp)
    first_stop = next(from_time_msg(c.header.stamp) for c in commands if c.source == "safe_stop"
                      and from_time_msg(c.header.stamp) > last_sample)
    # the monitor runs sensor time on by the wall clock after stall_grace_s (0.1 s) of silence
    assert first_stop - last_sample <= 0.1 + 2 * LIMITS.control_period_s, first_stop - last_sample


def test_a_refused_command_does_not_advance_a_lockstep_bridge(processes, probe, ros_domain):
    """The actuator side acts on the monitor's commands only: a refused one for the current step (no MAC, a
    forged MAC) neither moves the knee nor advances the lockstep simulation; the monitor's signed one does."""
    from exo.ros.trust import sign_message
    from exo.security import COMMAND_PURPOSE, MessageSigner
    from exo_msgs.msg import TorqueCommand

    graph = processes.graph("sim", only=("sim_bridge",), controller="pid", level="1", lockstep="true")
    joint = probe.subscribe(contract.JOINT_STATES)
    pub = probe.publisher(contract.TORQUE_COMMAND, qos=qos_profile(contract.TORQUE_COMMAND))
    probe.wait_for(lambda: bool(joint), 60.0, "the bridge's step 0")
    probe.wait_for_subscribers(pub)

    def command(torque: float, mac: bytes = b"") -> TorqueCommand:
        msg = TorqueCommand(joint=contract.KNEE_JOINT, torque=torque, source="pid", seq=len(joint) + 1, mac=mac)
        msg.header.stamp = joint[-1].header.stamp
        return msg

    for i in range(20):  # each stamped with the newest step the bridge published
        pub.publish(command(20.0, bytes(32) if i % 2 else b""))
        probe.spin_for(0.02)
    probe.spin_for(0.5)
    graph.stop()  # the guard's summary line
    counts = guard_summary(processes.tmp_path / "logs", "exo")
    stamps_seen = sorted({from_time_msg(j.header.stamp) for j in joint})
    assert int(counts["refused_commands"]) == 20, counts
    # a bridge that gets no accepted command advances only on its lockstep timeout (1 s of wall time)
    assert len(stamps_seen) == 1 + int(counts["lockstep_timeouts"]), (stamps_seen, counts)
    assert counts["accepted_commands"] == "0"

    # the control: the same command signed with the run's command key is the step's answer
    graph = processes.graph("sim", only=("sim_bridge",), controller="pid", level="1", lockstep="true",
                            namespace="/exo_signed")
    from exo.testing.probe import RosProbe

    with RosProbe(ros_domain, "/exo_signed", name="probe_signed") as signed:
        joint = signed.subscribe(contract.JOINT_STATES)
        pub = signed.publisher(contract.TORQUE_COMMAND, qos=qos_profile(contract.TORQUE_COMMAND))
        signed.wait_for(lambda: bool(joint), 60.0, "the bridge's step 0")
        signed.wait_for_subscribers(pub)
        signer = MessageSigner(load_secret(graph.secrets.file("command_key_file")), COMMAND_PURPOSE)
        msg = command(0.0)
        sign_message(signer, msg)
        pub.publish(msg)
        signed.wait_for(lambda: from_time_msg(joint[-1].header.stamp) > 0.0, 10.0, "the next step")
