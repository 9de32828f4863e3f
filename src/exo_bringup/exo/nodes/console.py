"""console: the therapist's web page next to the patient, served by this node (docs/live.md).

A thin rclpy shell around :class:`exo.console.state.ConsoleState` (what the page shows) and
:func:`exo.console.app.make_app` (the web application, served by uvicorn in a thread of this process):

- ``joint_states`` -> the knee angle (and the session's graph clock), ``torque_command`` -> the assistance
  torque, ``emg`` -> the extensors' envelope (:class:`exo.live.forward.EmgEnvelope`) -> the user's own effort,
  ``safety/status`` -> the safety state; with ``user``, the user's progress across sessions from the
  encrypted store (``exo progress``'s rows; ``EXO_STORE`` and ``EXO_KEY_FILE`` or ``EXO_PASSPHRASE``);
- the page's STOP -> the safety monitor's ``safety/estop`` service (std_srvs/Trigger). That is the only thing
  the page can do to the graph: no reset, no limit, no motion.

The page is served on ``host`` (127.0.0.1 by default). On any other address (or with ``require_token``) every
request must carry a token:
the run's ``console_token_file`` (set by the exo runner / launch file), else a fresh
``secrets.token_urlsafe``; the address with the token is printed at start.
"""

from __future__ import annotations

import base64
import secrets
import socket
import threading
import time

import numpy as np
import uvicorn
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from exo import contract
from exo.console.app import make_app
from exo.console.state import ConsoleConfig, ConsoleState
from exo.live.forward import EmgEnvelope
from exo.live.net import AddressError, bind_socket, check_host, check_port, is_loopback
from exo.ros import convert, trust
from exo.ros.node_main import run
from exo.ros.parameters import Param, ParameterError, declare_all
from exo.ros.qos import qos_profile
from exo.security.keys import SecretError, load_secret
from exo_msgs.msg import EmgPacket, SafetyStatus, TorqueCommand

PARAMS = [
    Param("host", "127.0.0.1", "Address the page is served on (127.0.0.1: this machine only; any other address "
          "requires the token printed at start)."),
    Param("require_token", False, "Require the token on 127.0.0.1 too (a machine other people log in to)."),
    Param("port", 8080, "TCP port of the page (0 = any free port, printed at start).", 0, 65535),
    Param("user", "", "Pseudonym of the user (shown on the page; their progress is read from the store)."),
    Param("controller", "", "Controller the graph runs (shown on the page)."),
    Param("target_knee_angle_rad", 0.2, "The task's target knee angle, rad (config/task.yaml).", -0.5, 2.5),
    Param("window_s", 20.0, "Graph time the plots cover, s.", 1.0, 600.0),
    Param("plot_rate_hz", 50.0, "Plot points per second of graph time, Hz.", 1.0, 500.0),
    Param("stream_rate_hz", 20.0, "Page updates per second, Hz.", 1.0, 60.0),
    Param("stale_after_s", 1.0, "Wall seconds without a knee sample before the page says 'no data', s.", 0.1, 60.0),
    Param("emg_envelope_rate_hz", 20.0, "Values per second of the EMG envelope behind the effort, Hz.", 1.0, 200.0),
    Param("estop_timeout_s", 2.0, "Wall seconds STOP waits for the e-stop service's answer, s.", 0.1, 10.0),
    trust.secret_param("console_token_file"),
]


def console_token(token_file: str) -> str:
    """The token of ``token_file`` (the run's secret, URL-safe base64), or a fresh one without a file."""
    if not token_file:
        return secrets.token_urlsafe(32)
    return base64.urlsafe_b64encode(load_secret(token_file)).rstrip(b"=").decode()


def console_url(host: str, port: int, token: str | None) -> str:
    """The address to open (a wildcard address is shown as this machine's name)."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


class ConsoleNode(Node):
    def __init__(self) -> None:
        super().__init__("console")
        self.p = p = declare_all(self, PARAMS)
        try:
            host, port = check_host(p["host"]), check_port(p["port"])
            needs_token = p["require_token"] or not is_loopback(host)
            self.token = console_token(p["console_token_file"]) if needs_token else None
            sock = bind_socket(host, port)
        except (AddressError, SecretError) as exc:
            raise ParameterError(f"console: {exc}") from None
        try:
            config = ConsoleConfig(p["window_s"], p["plot_rate_hz"], p["target_knee_angle_rad"], p["stale_after_s"])
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
        self.state = ConsoleState(config, user=p["user"], controller=p["controller"])
        self.envelope = EmgEnvelope(p["emg_envelope_rate_hz"])
        self.create_subscription(JointState, contract.JOINT_STATES.name, self._on_joint,
                                 qos_profile(contract.JOINT_STATES))
        self.create_subscription(TorqueCommand, contract.TORQUE_COMMAND.name, self._on_command,
                                 qos_profile(contract.TORQUE_COMMAND))
        self.create_subscription(SafetyStatus, contract.SAFETY_STATUS.name, self._on_status,
                                 qos_profile(contract.SAFETY_STATUS))
        self.create_subscription(EmgPacket, contract.EMG.name, self._on_emg, qos_profile(contract.EMG))
        self.estop = self.create_client(Trigger, contract.ESTOP_SERVICE)

        self.closing = False
        app = make_app(self.state, self._request_stop, token=self.token,
                       allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"] if self.token is None else None,
                       stream_rate_hz=p["stream_rate_hz"], closing=lambda: self.closing)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                                    timeout_graceful_shutdown=1))
        self.port = sock.getsockname()[1]
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="console-http",
                                       daemon=True)
        self.thread.start()
        if p["user"]:
            threading.Thread(target=self._load_progress, name="console-progress", daemon=True).start()
        else:
            self.state.set_progress(None, "no user given: start the console with --user ID to see their progress")
        url = console_url(host, self.port, self.token)
        self.get_logger().info(f"console on {url}" + ("" if self.token is None else
                                                      " (the token is required: keep it to the people at the bedside)"))
        print(f"[console] {url}", flush=True)

    # --- the graph -> the state ---------------------------------------------------------------
    def _on_joint(self, msg: JointState) -> None:
        try:
            angle, _, _ = convert.knee_from_joint_state(msg)
        except ValueError:
            return
        self.state.on_knee(convert.from_time_msg(msg.header.stamp), angle, time.monotonic())

    def _on_command(self, msg: TorqueCommand) -> None:
        self.state.on_command(msg.torque, msg.source)

    def _on_status(self, msg: SafetyStatus) -> None:
        self.state.on_status(convert.from_time_msg(msg.header.stamp), msg.state_name, msg.reason,
                             list(msg.active_limits))

    def _on_emg(self, msg: EmgPacket) -> None:
        names = list(msg.channel_names)
        samples = np.asarray(msg.samples, dtype=float)
        if not names or msg.num_samples == 0 or samples.size != msg.num_samples * len(names):
            return
        for value in self.envelope.push(convert.stamp_ns(msg.header.stamp), msg.sample_rate_hz, names,
                                        samples.reshape(msg.num_samples, len(names))):
            self.state.on_emg_envelope(value.channel_names, value.rms_v, value.stamp_ns * 1e-9)

    # --- the page's STOP (a worker thread of the web server) ------------------------------------------
    def _request_stop(self) -> tuple[bool, str]:
        """Call the e-stop service; ``(ok, message)``. Bounded by ``estop_timeout_s``."""
        t = self.state.stop_pressed()
        self.get_logger().warning(f"STOP pressed on the console page (graph time {t if t is not None else '-'} s)")
        if not self.estop.service_is_ready():
            ok, message = False, "the safety monitor's e-stop service is not available: use the physical stop"
        else:
            future = self.estop.call_async(Trigger.Request())
            deadline = time.monotonic() + self.p["estop_timeout_s"]
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.001)
            if not future.done():
                ok, message = False, (f"no answer from the e-stop service within {self.p['estop_timeout_s']:g} s: "
                                      "use the physical stop")
            else:
                ok, message = bool(future.result().success), future.result().message
        self.state.stop_answered(ok, message)
        if ok:  # (rclpy: one logging call site keeps one severity)
            self.get_logger().warning(f"e-stop service: {message}")
        else:
            self.get_logger().error(f"e-stop service: {message}")
        return ok, message

    def _load_progress(self) -> None:
        """The user's progress rows (``exo progress``), read from the store in the background."""
        from exo.cli.progress import session_summaries
        from exo.personalize.progress import progress_rows
        from exo.users import UserStore

        user = self.p["user"]
        try:
            opened = UserStore.open(None)
            rows = progress_rows(opened.profile(user), session_summaries(opened, user))
            self.state.set_progress([r.to_dict() for r in rows])
        except Exception as exc:  # noqa: BLE001 - the page says why; the console keeps running
            self.state.set_progress(None, f"progress of {user} unavailable: {exc}")

    def on_shutdown(self) -> None:
        self.closing = True
        self.server.should_exit = True
        self.thread.join(timeout=3.0)


def main(args: list[str] | None = None) -> None:
    run(ConsoleNode, args)


if __name__ == "__main__":
    main()
