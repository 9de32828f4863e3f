"""`exo real --emulate --fault imu_thigh:silent:AT`, the README's example, through the installed command.

test/drivers/test_real_graph.py runs `exo real --emulate` without a fault, and injects faults through its own
rig fixture; here the fault goes through the command line. The fault's time counts from the emulated rig's
start (exo.emulation.devices.DeviceFault), and the graph takes 4-5 s to come up after it: with the README's
`imu_thigh:silent:5` the PID ran 0.25 s in one run and not at all in another (SAFE_STOP "waiting for the first
update" throughout). The test uses 9 s so that the loop runs first, and still accepts a start-up slower than
that, checking the safety monitor's reaction either way. It runs with
--relaxed-timing (config/emulate.yaml: 1 s sensor timeouts instead of the hardware's 50 ms), as docs/drivers.md
advises on a machine busy with other work: on a loaded CI runner a late sample of another sensor could otherwise
latch the safe stop first, and the test is about the injected fault.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros


def test_exo_real_emulate_with_a_silent_thigh_imu_ends_in_a_safe_stop(exo, ros_domain: int, tmp_path: Path):
    logs, report = tmp_path / "logs", tmp_path / "timing.json"
    result = exo("real", "--emulate", "--fault", "imu_thigh:silent:9", "--duration", "8", "--relaxed-timing",
                 "--domain-id", str(ros_domain), "--log-dir", str(logs), "--timing-report", str(report), timeout=240)
    assert result.code == 0, result
    assert "faults=['imu_thigh:silent:9']" in result.text and "exo real summary" in result.text, result
    assert "stopped 7 node(s)" in result.text and "exit codes" not in result.text, result
    # the motor was left with zero torque, then out of motor mode
    assert "emulated motor: last motor frames: ['7fff7ff000000800', 'fffffffffffffffd']" in result.text, result

    timing = json.loads(report.read_text())
    sources = timing["command_sources"]
    assert sources.get("safe_stop", 0) > 0, sources
    assert all(s in ("pid", "safe_stop") or s.startswith("fallback_") for s in sources), sources
    # the silent IMU, and only it: its worst gap spans the rest of the run (null: no sample at all in the report's
    # window, which starts with the control loop), the shank IMU's stays at its rate
    gaps = timing["worst_sensor_gap_s"]
    assert gaps["imu_thigh"] is None or gaps["imu_thigh"] > 1.5, gaps
    assert gaps["imu_shank"] < 0.5 and gaps["joint_states"] < 0.5, gaps
    transitions = timing["safety_transitions"]
    assert transitions[-1]["state"] == "SAFE_STOP", transitions
    last_reason = re.search(r"│ last safety reason │ ([^│]*?) │", result.text)
    assert last_reason, result
    if sources.get("pid", 0) > 0:  # the loop ran before the fault: the monitor names the stale IMU
        assert re.match(r"sensor data stale: imu_thigh sample age [0-9.]+ s \(timeout 1(\.0)? s\)", last_reason[1]), \
            last_reason[1]
        assert transitions[-1]["reason"] == last_reason[1] and timing["safe_stops"] >= 1
        # (how long the PID ran first depends on the start-up: 4-5 s on an idle machine, 0.7 s of control
        # was left before the fault once on a loaded CI runner; the reason above is what this branch checks)
    else:  # silent before the loop started: the monitor never had all its sensors
        # (on a loaded runner the monitor may start judging before any sensor arrived: it then names them)
        assert last_reason[1] == "waiting for the first update" or re.fullmatch(
            r"sensor data stale: (\w+ never received(; )?)+", last_reason[1]), result
        assert [t["state"] for t in transitions] == ["SAFE_STOP"], transitions
