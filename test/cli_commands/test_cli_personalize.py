"""`exo sim --user ID` runs the user's deployed controller version, through the graph, recorded into the user's records.

A user whose profile holds a deployed reflex-aware reference PID (as `exo personalize` leaves it): the controller
node runs that controller with the stored parameters (its requests carry its name), the safety monitor and the sim
bridge's actuator guard keep the user's cap, and the recorded session names the version. After a rollback to the generic PID, the next run runs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exo import contract
from exo.bags.reader import open_session
from exo.users import Caps, UserStore

pytestmark = pytest.mark.ros

CAP_NM = 45.0
REFERENCE = {"kp": 200.0, "ki": 1500.0, "kd": 8.0, "peak_velocity_rad_s": 0.6, "torque_limit_nm": 40.0, "dt": 0.01,
             "profile": "minimum_jerk", "blend_fraction": 0.25, "anti_windup": "clamp", "derivative_filter_s": 0.0,
             "derivative_source": "difference"}


def _sources(opened: UserStore, user: str, number: int) -> tuple[set[str], float]:
    """The sources of a stored session's torque commands, and their largest |torque| (N m)."""
    with opened.open_session(user, number) as bag:
        name = contract.TORQUE_COMMAND.resolved("/exo")
        commands = open_session(bag).read_all({name})[name]
    torques = np.array([m.msg.torque for m in commands])
    return {m.msg.source for m in commands}, float(np.abs(torques).max())


def test_exo_sim_user_runs_the_deployed_version(exo, ros_domain: int, tmp_path: Path):
    store, key = tmp_path / "store", tmp_path / "store.key"
    common = ("--store", str(store), "--key-file", str(key))
    assert exo("user", "init-key", "--key-file", str(key)).code == 0
    opened = UserStore.open(store, key_file=key, create=True)
    opened.create_user("p-deployed", mas_level=1, caps=Caps(torque_cap_nm=CAP_NM))
    opened.add_controller("p-deployed", controller="reference_pid", params=REFERENCE, status="deployed",
                          reason="accepted: test fixture")

    run = exo("sim", "--user", "p-deployed", "--duration", "3", "--domain-id", str(ros_domain), "--log-dir",
              str(tmp_path / "logs"), *common, timeout=240)
    assert run.code == 0, run
    log = (tmp_path / "logs" / "controller.log").read_text()
    assert "controller=reference_pid" in log and "'peak_velocity_rad_s': 0.6" in log, log
    # the user's cap reaches the sim bridge's actuator guard too (not only the safety monitor)
    assert "guard cap 45 N m" in (tmp_path / "logs" / "sim_bridge.log").read_text()
    sources, peak = _sources(opened, "p-deployed", 1)
    assert "reference_pid" in sources and "pid" not in sources, sources
    assert peak <= CAP_NM + 1e-9

    # back to the generic controller (a version holding the generic PID, deployed by rollback)
    opened.add_controller("p-deployed", controller="pid", params={"kp": 344.04, "ki": 4062.43, "kd": 7.2839,
                                                                   "torque_limit_nm": CAP_NM}, status="candidate")
    assert exo("user", "rollback", "p-deployed", "c2", *common).code == 0
    run = exo("sim", "--user", "p-deployed", "--duration", "2", "--domain-id", str(ros_domain), "--log-dir",
              str(tmp_path / "logs2"), *common, timeout=240)
    assert run.code == 0, run
    sources, _ = _sources(opened, "p-deployed", 2)
    assert "pid" in sources and "reference_pid" not in sources, sources
