"""StartGate: when a lockstep sensor source (sim bridge, bag player) may leave its first step.

A lockstep source publishes step 0 and waits for the graph's answer (the ``torque_command``
stamped with it). The answer alone is not enough to go on: a subscriber that has not matched
the source's publisher yet (a recorder started at the same time) would miss the first samples,
and the sensor QoS keeps no history for it. The gate holds step 0 until

- every ``joint_states`` subscriber the source's participant has discovered has matched, and
- with ``await_recorder`` (the graph runs a recorder: ``record:=true``), the
  :data:`exo.graph.RECORDER_NODE` is among them (a recorder the participant has not
  discovered yet is in neither count, so the first condition alone does not wait for it)
  and has said, through ``source/recorder_ready``, that its own side has matched every
  publisher it discovered (see below: matching is not symmetric);

these two for at most ``lockstep_timeout_s`` of wall time after the answer (``await_recorder_timeout_s``
while a recorder is awaited), then the run starts with a warning that names what was missing: a
recorder never holds the exoskeleton back.

With ``start_paused`` (launch argument ``paused:=true``) the gate also holds step 0, without a
timeout, until the ``source/start`` service (:data:`exo.contract.SOURCE_START_SERVICE`) is called.
Matching is not symmetric: the source's publisher may count a subscriber whose own side has not
matched yet, and that subscriber still drops what arrives. Only the subscriber knows when it is
ready (a test's probe, a viewer that must see the whole run), so it starts the run itself.

The graph decides step 0 once (the safety monitor does not answer a re-offer), so a held source
starts from its timer with the stored answer, after offering step 0 again to the newcomer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from rclpy.node import Node
from rclpy.publisher import Publisher
from std_srvs.srv import Trigger

from exo import contract
from exo.graph import RECORDER_NODE
from exo.ros.parameters import Param

#: The gate's parameters, declared by every lockstep source (``await_recorder`` is set from the graph's
#: ``record`` launch argument; the source's own ``lockstep_timeout_s`` bounds the hold otherwise).
PARAMS = [
    Param("await_recorder", False, "Hold step 0 until the recorder node subscribes to joint_states, has "
          "matched and has called source/recorder_ready, so its bag starts with the run's first step (set by "
          "the record launch argument)."),
    Param("start_paused", False, "Hold step 0 until the source/start service is called (set by the paused "
          "launch argument): whatever must see the run from its first sample subscribes, then starts it."),
    Param("await_recorder_timeout_s", 10.0, "Wall seconds to hold step 0 for the recorder; then the run starts "
          "anyway, with a warning (a recorder never holds the exoskeleton back), s.", 0.0, 300.0),
]


class StartGate:
    """Holds a lockstep source's step 0 until its ``joint_states`` subscribers have matched.

    Args:
        node: the source node (its graph view counts the subscribers).
        publisher: the source's ``joint_states`` publisher.
        await_recorder: wait for the graph's recorder to subscribe as well.
        lockstep_timeout_s: longest hold for discovered subscribers, wall s.
        await_recorder_timeout_s: longest hold while the recorder is awaited, wall s.
        start_paused: hold until :meth:`resume` (the ``source/start`` service, see :meth:`offer_start`).
    """

    def __init__(self, node: Node, publisher: Publisher, *, await_recorder: bool, lockstep_timeout_s: float,
                 await_recorder_timeout_s: float, start_paused: bool = False) -> None:
        self.node = node
        self.publisher = publisher
        self.await_recorder = await_recorder
        self.paused = start_paused
        self.recorder_ready = False  # the recorder called source/recorder_ready
        self.limit_s = max(lockstep_timeout_s, await_recorder_timeout_s) if await_recorder else lockstep_timeout_s
        self.answered_at: float | None = None  # wall time of the first answer to step 0 (time.monotonic), s

    @classmethod
    def from_params(cls, node: Node, publisher: Publisher, p: Mapping[str, Any]) -> StartGate:
        """The gate of a source whose declared parameters ``p`` include :data:`PARAMS` and
        ``lockstep_timeout_s``."""
        return cls(node, publisher, await_recorder=p["await_recorder"], lockstep_timeout_s=p["lockstep_timeout_s"],
                   await_recorder_timeout_s=p["await_recorder_timeout_s"], start_paused=p["start_paused"])

    def offer_start(self, on_resume: Callable[[], None] | None = None,
                    on_recorder_ready: Callable[[], None] | None = None) -> None:
        """Offer the ``source/start`` service (std_srvs/Trigger), and ``source/recorder_ready`` when the
        recorder is awaited: the first resumes a paused gate, then calls ``on_resume``; the second marks the
        recorder ready, then calls ``on_recorder_ready`` (a source that can start at once does). A repeated
        call changes nothing."""

        def start(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
            resumed = self.resume()
            if resumed:
                self.node.get_logger().info("start requested: leaving the pause")
                if on_resume is not None:
                    on_resume()
            response.success = True
            response.message = "started" if resumed else "already running"
            return response

        def recorder_ready(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
            first = not self.recorder_ready
            self.recorder_ready = True
            if first and on_recorder_ready is not None:
                on_recorder_ready()
            response.success = True
            response.message = "noted" if first else "already noted"
            return response

        self.node.create_service(Trigger, contract.SOURCE_START_SERVICE, start)
        if self.await_recorder:
            self.node.create_service(Trigger, contract.RECORDER_READY_SERVICE, recorder_ready)

    def resume(self) -> bool:
        """Leave the pause; True if the gate was paused. The hold for subscribers counts from now."""
        if not self.paused:
            return False
        self.paused = False
        if self.answered_at is not None:
            self.answered_at = time.monotonic()
        return True

    def answered(self) -> None:
        """The graph answered step 0 (the first call counts)."""
        if self.answered_at is None:
            self.answered_at = time.monotonic()

    def open(self) -> bool:
        """Step 0 was answered and no pause holds it: may the run start now? (Logs a warning when it starts
        by timeout.)"""
        if self.paused or self.answered_at is None:
            return False
        if self.subscribers_matched():
            return True
        waited = time.monotonic() - self.answered_at
        if waited < self.limit_s:
            return False
        topic = self.publisher.topic_name
        self.node.get_logger().warning(
            f"starting after {waited:.1f} s without every {topic} subscriber matched "
            f"({self.publisher.get_subscription_count()} matched of {self.node.count_subscribers(topic)}"
            + (f"; recorder subscribed: {self.recorder_subscribed()}, ready: {self.recorder_ready}"
               if self.await_recorder else "")
            + "): a late subscriber misses the first samples"
        )
        return True

    def subscribers_matched(self) -> bool:
        """Every subscriber the graph shows has matched the publisher (and the recorder is one, and ready,
        if awaited)."""
        if self.await_recorder and not (self.recorder_ready and self.recorder_subscribed()):
            return False
        return self.publisher.get_subscription_count() >= self.node.count_subscribers(self.publisher.topic_name)

    def recorder_subscribed(self) -> bool:
        return any(info.node_name == RECORDER_NODE
                   for info in self.node.get_subscriptions_info_by_topic(self.publisher.topic_name))
