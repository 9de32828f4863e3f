"""bag_player: the sensor source of the replay graph.

Publishes the sensor topics of a recorded bag (as recorded, CDR bytes) with
``/clock`` at each sample's stamp, so the intent, controller and safety nodes
run on the recorded sensors exactly as they ran live.

Timing (parameter ``rate``):

- ``rate = 0`` (default): **lockstep**, as fast as the graph answers: step k
  (every sensor message of one stamp) is published, and step k+1 only once the
  ``torque_command`` stamped with step k arrived (or after ``lockstep_timeout_s``
  of wall time: the step is counted as unanswered and the replay goes on).
  Until the first command the first step is offered again every
  ``lockstep_timeout_s`` (the graph may still be coming up); after it, the first step is held
  until the ``joint_states`` subscribers (with ``await_recorder``, the recorder) have matched
  (:class:`exo.ros.start_gate.StartGate`).
- ``rate > 0``: real-time pacing scaled by ``rate`` (1.0 = as recorded), from the moment the
  graph answered the first step (offered again every ``lockstep_timeout_s`` until then); a
  graph slower than the pace misses samples, as it would live.

With ``start_paused`` (launch argument ``paused:=true``) the first step is held, in both, until the
``source/start`` service is called.

When the bag is exhausted the node logs a summary and exits with code 0 (a
launch file then shuts the replay down; ``exo replay`` collects the results).
"""

from __future__ import annotations

import os
import signal
import time

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock as ClockMsg

from exo import contract
from exo.bags.reader import BagError, open_session
from exo.bags.replay import replay_steps
from exo.ros import convert, start_gate
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError, declare_all
from exo.ros.qos import qos_profile
from exo.ros.types import interface_class
from exo_msgs.msg import TorqueCommand

PARAMS = [
    Param("bag", "", "Bag to replay: an exo session folder, a rosbag2 bag folder or a .mcap file."),
    Param("rate", 0.0, "Playback speed in simulated seconds per wall second; 0 = lockstep (as fast as the "
          "graph answers, one step per torque_command).", 0.0, 1000.0),
    Param("lockstep_timeout_s", 1.0, "Lockstep: wall seconds to wait for a step's command before going on, s.",
          0.001, 60.0),
    *start_gate.PARAMS,
    Param("exit_when_done", True, "Exit (code 0) once every step was published and answered or timed out."),
]


class BagPlayer(Node):
    def __init__(self) -> None:
        super().__init__("bag_player")
        self.p = declare_all(self, PARAMS)
        if not self.p["bag"]:
            raise ParameterError("parameter 'bag' is empty: name the bag to replay")
        try:
            session = open_session(self.p["bag"])
            self.steps = replay_steps(session)
        except (BagError, ValueError) as exc:
            raise ParameterError(f"parameter 'bag': {exc}") from None
        for problem in session.problems:
            self.get_logger().warning(problem)
        self.pub_clock = self.create_publisher(ClockMsg, contract.CLOCK_TOPIC.name, qos_profile(contract.CLOCK_TOPIC))
        self.pubs = {}
        for step in self.steps:
            for rel, msgtype, _ in step.messages:
                if rel not in self.pubs:
                    topic = contract.TOPICS[rel]
                    self.pubs[rel] = self.create_publisher(interface_class(msgtype), topic.name, qos_profile(topic))
        self.create_subscription(TorqueCommand, contract.TORQUE_COMMAND.name, self._on_command,
                                 qos_profile(contract.TORQUE_COMMAND))
        joint = self.pubs.get(contract.JOINT_STATES.name)
        self.gate = None if joint is None else start_gate.StartGate.from_params(self, joint, self.p)
        if self.gate is not None:
            self.gate.offer_start(on_resume=self._lockstep_watch, on_recorder_ready=self._lockstep_watch)
        elif self.p["start_paused"]:
            raise ParameterError("parameter 'start_paused': the bag has no joint_states, so the player has no "
                                 "first step to hold")
        self.k = 0
        self.started = False
        self.timeouts = 0
        self.done = False
        self.steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._publish(0)
        self.awaiting_since = time.monotonic()
        # both modes offer the first step until the graph answers it (its subscribers may still be matching)
        self.create_timer(self.p["lockstep_timeout_s"] / 5, self._lockstep_watch, clock=self.steady)
        if self.p["rate"] > 0.0:
            self.wall0 = None
            self.create_timer(0.002, self._paced_tick, clock=self.steady)
        self.get_logger().info(
            f"replaying {len(self.steps)} steps ({self.steps[-1].stamp_s - self.steps[0].stamp_s:.2f} s) of "
            f"{', '.join(sorted(self.pubs))} from {self.p['bag']} "
            + ("in lockstep" if self.p["rate"] == 0.0 else f"at x{self.p['rate']:.2f}")
        )

    def _publish(self, k: int) -> None:
        step = self.steps[k]
        self.pub_clock.publish(ClockMsg(clock=convert.to_time_msg(step.stamp_s)))
        for rel, _, raw in step.messages:
            self.pubs[rel].publish(raw)

    def _advance(self) -> None:
        self.k += 1
        if self.k >= len(self.steps):
            self._finish()
            return
        self._publish(self.k)
        self.awaiting_since = time.monotonic()

    def _answers_current(self, stamp_s: float) -> bool:
        return self.k < len(self.steps) and abs(stamp_s - self.steps[self.k].stamp_s) < 1e-6

    def _on_command(self, msg: TorqueCommand) -> None:
        if self.done or not self._answers_current(convert.from_time_msg(msg.header.stamp)):
            return
        if not self.started:
            if self.gate is not None:
                self.gate.answered()
                if not self.gate.open():
                    return  # held (exo.ros.start_gate): the watch timer starts the replay
            self._start()
        elif self.p["rate"] == 0.0:
            self._advance()

    def _start(self) -> None:
        """Leave step 0: at once in lockstep; paced, the clock starts now."""
        self.started = True
        if self.p["rate"] == 0.0:
            self._advance()
        else:
            self.wall0 = time.monotonic()

    def _lockstep_watch(self) -> None:
        if self.done:
            return
        if not self.started and self.gate is not None and self.gate.open():
            # step 0 was answered while a subscriber was missing, and the graph decides a step once: offer it
            # to the newcomer, then go on
            self._publish(0)
            self._start()
            return
        if time.monotonic() - self.awaiting_since < self.p["lockstep_timeout_s"]:
            return
        if not self.started:
            self._publish(0)  # the graph is still coming up, or a subscriber is: offer the first step again
            self.awaiting_since = time.monotonic()
            return
        if self.p["rate"] > 0.0:
            return  # paced: no waiting for answers once started
        self.timeouts += 1
        if self.timeouts in (1, 10, 100):
            self.get_logger().warning(f"no torque_command for t={self.steps[self.k].stamp_s:.3f} s within "
                                      f"{self.p['lockstep_timeout_s']} s; going on ({self.timeouts} time(s))")
        self._advance()

    def _paced_tick(self) -> None:
        if self.done or self.wall0 is None:
            return
        due = self.steps[0].stamp_s + (time.monotonic() - self.wall0) * self.p["rate"]
        while not self.done and self.k + 1 < len(self.steps) and self.steps[self.k + 1].stamp_s <= due:
            self._advance()
        if self.k + 1 >= len(self.steps) and not self.done:
            self._finish()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.get_logger().info(f"replay done: {len(self.steps)} steps, {self.timeouts} unanswered (timed out)")
        if self.p["exit_when_done"]:
            os.kill(os.getpid(), signal.SIGINT)  # node_main's handler ends the spin loop cleanly (exit 0)


def main(args: list[str] | None = None) -> None:
    run(BagPlayer, args)


if __name__ == "__main__":
    main()
