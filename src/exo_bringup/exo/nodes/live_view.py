"""live_view: the contract topics, live, over the Foxglove WebSocket protocol (foxglove-sdk), read only.

A thin rclpy shell around :mod:`exo.live.forward` and foxglove-sdk's server:

- every topic of :data:`exo.live.forward.FORWARDED` is subscribed *raw* (the serialized CDR bytes, never
  deserialized here) and served on a channel of the same name with its ``ros2msg`` definition, so Foxglove
  shows the graph's exact messages; control-rate streams pass a :class:`~exo.live.forward.RateLimiter`
  (``max_rate_hz`` on the messages' stamps), the safety state and events always pass;
- ``emg`` becomes ``<namespace>/live/emg_envelope`` (JSON): the filtered EMG's RMS per channel over windows
  of ``1 / emg_envelope_rate_hz`` s, V (:class:`~exo.live.forward.EmgEnvelope`);
- ``<namespace>/live/session`` (JSON, 1 Hz): the user's pseudonym, controller, subject, elapsed graph time.

Nothing is sent while no client subscribes. The server is bound to ``host`` (127.0.0.1 by default) and
advertises no capability: clients cannot publish into the graph, call services or read or write
parameters (the server answers such requests with an error status). Message log times are the
messages' header stamps (sim time under ``use_sim_time``).
"""

from __future__ import annotations

import time

import foxglove
import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from exo import contract
from exo.bags.typestore import exo_typestore
from exo.live import forward
from exo.live.net import AddressError, check_host, check_port
from exo.ros import convert
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError, declare_all
from exo.ros.qos import qos_profile
from exo.ros.types import interface_class
from exo_msgs.msg import EmgPacket

PARAMS = [
    Param("host", "127.0.0.1", "Address the Foxglove WebSocket server binds to (127.0.0.1: this machine only; "
          "0.0.0.0: every interface, a network anyone on it can read)."),
    Param("port", 8765, "TCP port of the Foxglove WebSocket server (0 = any free port, logged at start).", 0, 65535),
    Param("max_rate_hz", forward.DEFAULT_MAX_RATE_HZ, "Most messages per second of stamp time forwarded on each "
          "control-rate stream (the safety state and events are never capped), Hz; 0 = every message.", 0.0, 10000.0),
    Param("emg_envelope_rate_hz", forward.DEFAULT_EMG_ENVELOPE_RATE_HZ, "Values per second of the EMG envelope "
          "(RMS window = its period), Hz.", 1.0, 500.0),
    Param("emg_mains_hz", 50.0, "Mains frequency notched out of the EMG before its envelope, Hz (0 = none).", 0.0, 60.0),
    Param("session_rate_hz", 1.0, "Rate of the session channel, Hz.", 0.1, 10.0),
    Param("user", "", "Pseudonym of the user (shown in the session channel; never a name)."),
    Param("controller", "", "Controller the graph runs (shown in the session channel)."),
]


class LiveViewNode(Node):
    def __init__(self) -> None:
        super().__init__("live_view")
        self.p = declare_all(self, PARAMS)
        try:
            host, port = check_host(self.p["host"]), check_port(self.p["port"])
        except AddressError as exc:
            raise ParameterError(f"live_view: {exc}") from None
        self.fox = foxglove.Context()
        try:
            # no capabilities: no client publishing, no services, no parameters (read only)
            self.server = foxglove.start_server(name=f"exo {self.get_namespace()}", host=host, port=port,
                                                capabilities=[], context=self.fox)
        except RuntimeError as exc:
            raise ParameterError(f"live_view: cannot serve Foxglove on {host}:{port}: "
                                 f"{str(exc).removeprefix('FoxgloveError: ')}") from None
        namespace = self.get_namespace()
        store = exo_typestore()
        self.limiters: dict[str, forward.RateLimiter] = {}
        self.channels: dict[str, foxglove.Channel] = {}
        for item in forward.FORWARDED:
            topic = item.topic
            definition = store.generate_msgdef(topic.msg_type, ros_version=2)[0]
            name = topic.resolved(namespace)
            self.channels[topic.name] = foxglove.Channel(
                name, message_encoding="cdr", context=self.fox,
                schema=foxglove.Schema(name=topic.msg_type, encoding="ros2msg", data=definition.encode()))
            self.limiters[topic.name] = forward.RateLimiter(self.p["max_rate_hz"] if item.capped else 0.0)
            self.create_subscription(interface_class(topic.msg_type), topic.name, self._forwarder(topic.name),
                                     qos_profile(topic), raw=True)
        self.envelope = forward.EmgEnvelope(self.p["emg_envelope_rate_hz"], self.p["emg_mains_hz"])
        self.envelope_channel = foxglove.Channel(
            forward.live_channel(namespace, forward.EMG_ENVELOPE), schema=ENVELOPE_SCHEMA, context=self.fox)
        self.session_channel = foxglove.Channel(
            forward.live_channel(namespace, forward.SESSION), schema=SESSION_SCHEMA, context=self.fox)
        self.create_subscription(EmgPacket, contract.EMG.name, self._on_emg, qos_profile(contract.EMG))
        self.started_wall_s = time.time()
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.create_timer(1.0 / self.p["session_rate_hz"], self._publish_session,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"Foxglove live view on ws://{host}:{self.server.port} (read only; open Foxglove, "
                               f"'Open connection', Foxglove WebSocket; layout config/foxglove/exo.json)")

    def _forwarder(self, name: str):
        """Callback of one forwarded topic: the raw CDR bytes go to the channel if a client watches and the
        rate limit lets them (knee samples also advance the session's clock)."""
        channel, limiter = self.channels[name], self.limiters[name]
        base = channel.base  # foxglove's channel itself: bytes in, no per-message encoding checks
        clock_source = name == contract.JOINT_STATES.name
        stamp_of = forward.cdr_stamp_ns

        def on_raw(data: bytes) -> None:
            if clock_source:
                t = stamp_of(data) * 1e-9
                if self.first_t is None or (self.last_t is not None and t < self.last_t):
                    self.first_t = t
                self.last_t = t
            if not base.has_sinks():
                return
            stamp = stamp_of(data)
            if limiter.accept(stamp):
                base.log(data, stamp, None)

        return on_raw

    def _on_emg(self, msg: EmgPacket) -> None:
        if not self.envelope_channel.has_sinks():
            return
        names = list(msg.channel_names)
        if not names or msg.num_samples == 0:
            return
        samples = np.asarray(msg.samples, dtype=float)
        if samples.size != msg.num_samples * len(names):
            return  # malformed: the intent estimator names it; the view just skips it
        for value in self.envelope.push(convert.stamp_ns(msg.header.stamp), msg.sample_rate_hz, names,
                                        samples.reshape(msg.num_samples, len(names))):
            self.envelope_channel.log(value.to_json(), log_time=value.stamp_ns)

    def _publish_session(self) -> None:
        info = forward.session_info(namespace=self.get_namespace(), user=self.p["user"],
                                    controller=self.p["controller"],
                                    started_wall_s=self.started_wall_s, graph_time_s=self.last_t,
                                    first_graph_time_s=self.first_t)
        self.session_channel.log(info, log_time=round((self.last_t or 0.0) * 1e9))

    def on_shutdown(self) -> None:
        passed = {k: v.passed for k, v in self.limiters.items() if v.passed}
        dropped = {k: v.dropped for k, v in self.limiters.items() if v.dropped}
        self.get_logger().info(f"forwarded {passed}; dropped by the rate limit {dropped}")
        self.server.stop()


#: JSON schema of the EMG envelope channel.
ENVELOPE_SCHEMA = {
    "type": "object",
    "title": "exo EMG envelope (RMS of the filtered EMG per window, V)",
    "properties": {
        "timestamp": {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}},
        "channel_names": {"type": "array", "items": {"type": "string"}},
        "rms_v": {"type": "array", "items": {"type": "number"}},
        "window_s": {"type": "number"},
        "channels": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}
#: JSON schema of the session channel.
SESSION_SCHEMA = {
    "type": "object",
    "title": "exo session (pseudonym only)",
    "properties": {
        "user": {"type": "string"}, "controller": {"type": "string"},
        "namespace": {"type": "string"}, "started_wall_s": {"type": "number"}, "elapsed_s": {"type": "number"},
    },
}


def main(args: list[str] | None = None) -> None:
    run(LiveViewNode, args)


if __name__ == "__main__":
    main()
