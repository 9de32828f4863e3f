"""The node graph: which nodes run in which mode, with which parameters.

Single source of truth for the graph. ``launch/*.launch.py`` (ROS 2 installs,
``ros2 launch exo_bringup sim.launch.py``) and the pip runner (``exo sim``,
:mod:`exo.runner`) both build their processes from :func:`nodes_for` and
:data:`LAUNCH_ARGUMENTS`; neither lists nodes of its own.

Modes (docs/architecture.md): in ``sim`` the sim bridge is the sensor
source and actuator sink; in ``real`` the hardware drivers are; in ``replay``
a bag player is. The intent, controller and safety nodes are the same in all
modes.

Pure Python: no rclpy or launch import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

MODES = ("sim", "real", "replay")

#: Name of the optional recorder node (the sim bridge holds its first sample until it has subscribed).
RECORDER_NODE = "recorder"
#: Names of the optional live view (Foxglove) and therapist's console nodes (docs/live.md).
LIVE_VIEW_NODE = "live_view"
CONSOLE_NODE = "console"


@dataclass(frozen=True)
class LaunchArgument:
    """A user-facing argument of the graph (``ros2 launch ... name:=value`` / ``exo sim --name``).

    Attributes:
        default: default value, as a string (what launch passes around).
        description: what it does, with units.
        value_type: python type of the ROS parameter it feeds (str, int, float, bool).
        choices: allowed values, if restricted.
    """

    default: str
    description: str
    value_type: type = str
    choices: tuple[str, ...] = ()

    def parse(self, name: str, text: str) -> str | int | float | bool:
        """Convert ``text`` to the argument's type, with an error naming the argument."""
        if self.choices and text not in self.choices:
            raise ValueError(f"argument '{name}': {text!r} is not one of {', '.join(self.choices)}")
        try:
            if self.value_type is bool:
                lowered = text.strip().lower()
                if lowered not in ("true", "false", "1", "0"):
                    raise ValueError
                return lowered in ("true", "1")
            return self.value_type(text)
        except ValueError:
            raise ValueError(
                f"argument '{name}': {text!r} is not a valid {self.value_type.__name__}"
            ) from None


#: Arguments of the graph, shared by every launch file and the pip runner.
LAUNCH_ARGUMENTS: dict[str, LaunchArgument] = {
    "namespace": LaunchArgument("/exo", "Namespace of every topic, service and node of the graph."),
    "use_sim_time": LaunchArgument(
        "true", "Nodes take time from /clock (sim bridge or bag) instead of the system clock.", bool,
        ("true", "false"),
    ),
    "params_file": LaunchArgument(
        "", "Extra ROS parameter file applied on top of config/*.yaml (node-name keys or /**)."
    ),
    "log_level": LaunchArgument("info", "Log level of every node.", str, ("debug", "info", "warn", "error")),
    "enclave_prefix": LaunchArgument(
        "", "SROS2 (full ROS 2 installs with DDS-Security): each node runs in the enclave <prefix>/<node name> "
        "(e.g. /exo gives /exo/safety_monitor); empty = no enclave. See docs/safety.md."
    ),
    "twin": LaunchArgument("reduced", "Digital twin the sim bridge runs.", str, ("reduced", "full")),
    "level": LaunchArgument(
        "1", "Modified Ashworth spasticity level of the simulated subject.", int, ("0", "1", "2", "3")
    ),
    "subject_seed": LaunchArgument("0", "Seed of the simulated subject's parameter noise.", int),
    "lockstep": LaunchArgument(
        "true",
        "Sim bridge advances one control step only when the command for the previous step arrived "
        "(as fast as possible, deterministic); false = real-time pacing.",
        bool,
        ("true", "false"),
    ),
    "controller": LaunchArgument("pid", "Controller that produces torque_request (reference_pid: the PID on a "
                                 "slow minimum-jerk reference; assessment: the clinical assessment protocol on a "
                                 "relaxed user, exo assess; user: the deployed controller version of user:=ID, "
                                 "exo personalize).", str,
                                 ("sac", "pid", "reference_pid", "zero", "assessment", "user")),
    "user": LaunchArgument(
        "", "Pseudonym of a user of the encrypted user store (exo user create): the safety monitor, the actuator "
        "guard and the assessment take that user's caps from the profile (store and key from EXO_STORE and "
        "EXO_KEY_FILE or EXO_PASSPHRASE); empty = the conservative caps of config/safety.yaml."
    ),
    "policy": LaunchArgument("", "Path of an exported policy (for controller:=sac); empty = the default one."),
    "record": LaunchArgument(
        "false", "Run the recorder: every contract topic into a rosbag2 MCAP session.", bool, ("true", "false")
    ),
    "record_dir": LaunchArgument("", "Session folder the recorder creates; empty = runs/bags/<UTC date-time>."),
    "user_id": LaunchArgument("", "Pseudonymous user id written into the bag's session metadata."),
    "session_info": LaunchArgument(
        "", "More session metadata for the bag, 'key=value' pairs separated by commas (twin=full,level=3)."
    ),
    "paused": LaunchArgument(
        "false", "The sensor source (sim bridge, bag player) holds its first step until the source/start service "
        "is called: whatever must see the run from its first sample (a probe, a live view) subscribes first.",
        bool, ("true", "false"),
    ),
    "bag": LaunchArgument("", "Bag the replay graph plays (session folder, bag folder or .mcap file)."),
    "rate": LaunchArgument(
        "0.0", "Replay speed, simulated s per wall s; 0 = lockstep (as fast as the graph answers).", float
    ),
    "sync_inputs": LaunchArgument(
        "exact",
        "Controller: 'exact' waits for every stream's sample of a step (sim, bags); 'latest' uses the newest "
        "of each (hardware sensors run at their own rates and phases).",
        str,
        ("exact", "latest"),
    ),
    "intent": LaunchArgument(
        "false", "Run the intent_estimator (EMG LSTM -> intent topic).", bool, ("true", "false")
    ),
    "live": LaunchArgument(
        "false", "Run the live_view: the contract topics over the Foxglove WebSocket protocol, read only "
        "(docs/live.md).", bool, ("true", "false")
    ),
    "live_host": LaunchArgument(
        "127.0.0.1", "Address the live view binds to (127.0.0.1 = this machine only; 0.0.0.0 = every interface)."
    ),
    "live_port": LaunchArgument("8765", "TCP port of the live view's Foxglove WebSocket server.", int),
    "console": LaunchArgument(
        "false", "Run the therapist's console: a local web page with live plots, the safety state, the session "
        "and the user's progress, and a STOP button (the e-stop service) (docs/live.md).", bool, ("true", "false")
    ),
    "console_host": LaunchArgument(
        "127.0.0.1", "Address the console binds to; any other than 127.0.0.1 requires the token it prints at start."
    ),
    "console_port": LaunchArgument("8080", "TCP port of the console's web page.", int),
}


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    Attributes:
        name: ROS node name (also the key in parameter files).
        executable: console script of exo_bringup (``ros2 run exo_bringup <executable>``).
        module: python module whose ``main()`` runs the node (used by the pip runner).
        modes: modes the node runs in.
        param_files: files under ``config/`` with the node's parameters (``/**`` or node-name keys).
        arg_params: ROS parameter name -> launch argument that sets it (the node brings the argument
            into every mode it runs in).
        follows: ROS parameter name -> launch argument of *another* node that also sets it, in the
            modes where that argument exists (elsewhere the parameter keeps its file default). Use
            :meth:`parameters_from`.
        required: the graph cannot work without it; if it dies the runner stops everything.
        enabled_by: name of a bool launch argument that switches the node on (``record:=true``,
            ``intent:=false``); ``None`` = always on in its modes. Optional nodes are declared
            once here and switched by argument, so launch files and ``exo`` commands agree.
        mode_defaults: per-mode defaults of launch arguments this node brings
            (``{"real": {"lockstep": "false"}}``); the argument's own default elsewhere.
        secrets: parameters naming the run's secret files this node gets
            (:data:`exo.security.keys.SECRET_PARAMS`): whoever starts the graph creates them
            (:class:`exo.security.keys.RunSecrets`) and hands each node only its own.
    """

    name: str
    executable: str
    module: str
    modes: frozenset[str]
    param_files: tuple[str, ...] = ()
    arg_params: dict[str, str] = field(default_factory=dict)
    follows: dict[str, str] = field(default_factory=dict)
    required: bool = True
    enabled_by: str | None = None
    mode_defaults: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    def parameters_from(self, args: dict[str, object]) -> dict[str, object]:
        """``{parameter: value}`` the resolved launch ``args`` of a mode set on this node."""
        out = {param: args[arg] for param, arg in self.arg_params.items()}
        out.update({param: args[arg] for param, arg in self.follows.items() if arg in args})
        if args.get("user") and (self.name != "controller" or args.get("controller") == "assessment"):
            out.update(user_parameters(self.name, str(args["user"])))
        if args.get("user") and self.name == "controller" and args.get("controller") != "assessment":
            out["assistance"] = user_assistance(str(args["user"]))
        if args.get("controller") == "user" and self.name in ("controller", RECORDER_NODE):
            if not args.get("user"):
                raise ValueError("controller 'user' runs the deployed controller of a user: give user:=ID")
            name, params, version = user_controller(str(args["user"]))
            if self.name == "controller":
                out.update({"controller": name, **{f"{name}.{k}": v for k, v in params.items()}})
            else:
                out.update({"controller": name, "policy": f"user controller {version}"})
        return out


#: Every node of the graph, in start order (consumers before producers so none misses data).
NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        name=RECORDER_NODE,
        executable="recorder",
        module="exo.nodes.recorder",
        modes=frozenset(MODES),
        param_files=("recorder.yaml",),
        arg_params={"bag_dir": "record_dir", "user_id": "user_id", "controller": "controller", "policy": "policy",
                    "session_info": "session_info"},
        required=False,  # a recorder that fails must not stop the exoskeleton
        enabled_by="record",
    ),
    NodeSpec(
        name="safety_monitor",
        executable="safety_monitor",
        module="exo.nodes.safety_monitor",
        modes=frozenset(MODES),
        param_files=("safety.yaml", "safety_monitor.yaml"),
        # a lockstep sim bridge pauses while it waits for a command; a free-running one that pauses is dead
        follows={"paced_source": "lockstep"},
        secrets=("command_key_file", "request_key_file", "reset_token_file"),
    ),
    NodeSpec(
        name="controller",
        executable="controller",
        module="exo.nodes.controller",
        modes=frozenset(MODES),
        param_files=("task.yaml", "controllers.yaml"),
        arg_params={"controller": "controller", "policy": "policy", "sync_inputs": "sync_inputs"},
        secrets=("request_key_file",),
    ),
    NodeSpec(
        name="intent_estimator",
        executable="intent_estimator",
        module="exo.nodes.intent_estimator",
        modes=frozenset(MODES),
        param_files=("intent_estimator.yaml",),
        required=False,
        enabled_by="intent",
    ),
    NodeSpec(
        name=LIVE_VIEW_NODE,
        executable="live_view",
        module="exo.nodes.live_view",
        modes=frozenset(MODES),
        arg_params={"host": "live_host", "port": "live_port", "user": "user", "controller": "controller"},
        required=False,  # a viewer that fails must not stop the exoskeleton
        enabled_by="live",
    ),
    NodeSpec(
        name=CONSOLE_NODE,
        executable="console",
        module="exo.nodes.console",
        modes=frozenset(MODES),
        param_files=("task.yaml", "console.yaml"),
        arg_params={"host": "console_host", "port": "console_port", "user": "user", "controller": "controller"},
        required=False,
        enabled_by="console",
        secrets=("console_token_file",),
    ),
    NodeSpec(
        name="sim_bridge",
        executable="sim_bridge",
        module="exo.nodes.sim_bridge",
        modes=frozenset({"sim"}),
        param_files=("task.yaml", "sim_bridge.yaml", "actuator_guard.yaml"),
        arg_params={"twin": "twin", "level": "level", "subject_seed": "subject_seed", "lockstep": "lockstep",
                    "await_recorder": "record", "start_paused": "paused"},
        secrets=("command_key_file",),
    ),
    NodeSpec(
        name="bag_player",
        executable="bag_player",
        module="exo.nodes.bag_player",
        modes=frozenset({"replay"}),
        param_files=("bag_player.yaml",),
        arg_params={"bag": "bag", "rate": "rate", "await_recorder": "record", "start_paused": "paused"},
    ),
    # --- real mode: the hardware drivers are the sensor source and actuator sink (config/drivers.yaml) ---
    NodeSpec(
        name="actuator_driver",
        executable="actuator_driver",
        module="exo.nodes.actuator_driver",
        modes=frozenset({"real"}),
        param_files=("drivers.yaml", "actuator_guard.yaml"),
        # hardware runs on the system clock, and its sensors at their own rates and phases
        mode_defaults={"real": {"use_sim_time": "false", "sync_inputs": "latest"}},
        secrets=("command_key_file",),
    ),
    NodeSpec(
        name="imu_thigh_driver",
        executable="imu_driver",
        module="exo.nodes.imu_driver",
        modes=frozenset({"real"}),
        param_files=("drivers.yaml",),
    ),
    NodeSpec(
        name="imu_shank_driver",
        executable="imu_driver",
        module="exo.nodes.imu_driver",
        modes=frozenset({"real"}),
        param_files=("drivers.yaml",),
    ),
    NodeSpec(
        name="emg_driver",
        executable="emg_driver",
        module="exo.nodes.emg_driver",
        modes=frozenset({"real"}),
        param_files=("drivers.yaml",),
        required=False,  # the safety monitor does not depend on EMG; the intent estimator reports its loss
    ),
    NodeSpec(
        name="foot_pressure_driver",
        executable="foot_pressure_driver",
        module="exo.nodes.foot_pressure_driver",
        modes=frozenset({"real"}),
        param_files=("drivers.yaml",),
        required=False,
    ),
)


#: What a user's caps (:func:`exo.users.caps_for`: safety-monitor parameter names of config/safety.yaml) set on
#: each node: the monitor takes them as they are, the actuator side's guard and the assessment controller
#: their own copies, so that every layer enforces the user's caps and not only the defaults.
USER_CAP_PARAMETERS: dict[str, dict[str, str]] = {
    "safety_monitor": {"user_torque_cap_nm": "user_torque_cap_nm", "max_slew_rate_nm_per_s": "max_slew_rate_nm_per_s",
                       "joint_min_angle_rad": "joint_min_angle_rad", "joint_max_angle_rad": "joint_max_angle_rad"},
    "sim_bridge": {"user_torque_cap_nm": "guard.torque_cap_nm", "max_slew_rate_nm_per_s": "guard.max_slew_rate_nm_per_s",
                   "joint_min_angle_rad": "guard.joint_min_angle_rad", "joint_max_angle_rad": "guard.joint_max_angle_rad"},
    "actuator_driver": {"user_torque_cap_nm": "guard.torque_cap_nm",
                        "max_slew_rate_nm_per_s": "guard.max_slew_rate_nm_per_s",
                        "joint_min_angle_rad": "guard.joint_min_angle_rad",
                        "joint_max_angle_rad": "guard.joint_max_angle_rad"},
    "controller": {"user_torque_cap_nm": "assessment.torque_limit_nm",
                   "max_slew_rate_nm_per_s": "assessment.slew_limit_nm_s"},
}


def user_parameters(node: str, user: str) -> dict[str, float]:
    """The parameters ``user``'s profile sets on ``node`` (see :data:`USER_CAP_PARAMETERS`).

    The assessment's range is kept inside the user's range of motion too: its flexed and extended ends
    stay a soft-zone width (config/safety.yaml ``soft_zone_width_rad``) inside the user's joint limits.

    Raises:
        ValueError: the store cannot be opened, the key is wrong or the user does not exist (the message
            says which).
    """
    caps = _user_caps(user)
    mapping = USER_CAP_PARAMETERS.get(node, {})
    out = {mapping[name]: float(value) for name, value in caps.items() if name in mapping}
    if node == "controller":
        protocol = assessment_protocol(user)
        out["assessment.flexed_angle_rad"] = protocol.flexed_angle_rad
        out["assessment.extended_angle_rad"] = protocol.extended_angle_rad
    return out


def overrides_file(spec: NodeSpec, args: dict[str, object], overrides: dict[str, object], folder: Path) -> Path:
    """Write the parameters the launch arguments set on ``spec``'s node as a ROS parameter file; its path.

    The file (``<folder>/<node>.overrides.yaml``, mode 0600) keys them by the node's fully qualified name
    (``/exo/controller``) and goes last on the node's command line (pip runner) or parameter list (launch).
    Why not ``-p name:=value`` or a dictionary: rcl files both under the wildcard ``/**`` entry, and when a
    parameter file with a ``/**`` entry (``config/task.yaml``) comes first, every ``/**/<node>`` entry of a later
    file (``config/controllers.yaml``) beats them, whatever the order on the command line. A fully qualified
    entry of the last file wins over all of them.
    """
    import yaml

    from exo.paths import write_private_file

    namespace = str(args["namespace"]).rstrip("/")
    path = Path(folder) / f"{spec.name}.overrides.yaml"
    text = yaml.safe_dump({f"{namespace}/{spec.name}": {"ros__parameters": dict(overrides)}}, sort_keys=True)
    return write_private_file(path, text)


def user_controller(user: str) -> tuple[str, dict[str, object], str]:
    """The controller ``user`` runs (``controller:=user``): its registry name, parameters and version id.

    The deployed version of the user's profile (``exo personalize``, ``exo user rollback``), with its
    parameters exactly as stored (a personalised policy is decrypted from the store into a private
    temporary folder that is removed when this process exits); before the first one, the generic PID of ``config/controllers.yaml``
    capped at the user's torque cap (version "generic").

    Raises:
        ValueError: as :func:`user_parameters`.
    """
    import os

    key = (user, os.environ.get("EXO_STORE", ""), os.environ.get("EXO_KEY_FILE", ""))
    if key not in _USER_CONTROLLERS:
        from exo.paths import config_file
        from exo.personalize.run import generic_choice
        from exo.safety import SafetyLimits
        from exo.users import UserStore

        store = UserStore.open(None)
        version = store.profile(user).deployed
        if version is not None and version.controller:
            from exo.personalize.run import version_choice

            # a learned policy kept in the store is decrypted into a private folder for this run only
            choice = version_choice(store, user, version)
            _USER_CONTROLLERS[key] = (choice.name, dict(choice.params), version.id)
        else:
            limits = SafetyLimits.from_yaml(config_file("safety.yaml"))
            cap = float(_user_caps(user).get("user_torque_cap_nm", limits.user_torque_cap_nm))
            choice = generic_choice(cap)
            _USER_CONTROLLERS[key] = (choice.name, dict(choice.params), "generic")
    return _USER_CONTROLLERS[key]


_USER_CONTROLLERS: dict[tuple[str, str, str], tuple[str, dict[str, object], str]] = {}


def assessment_protocol(user: str = ""):
    """The :class:`exo.assessment.AssessmentProtocol` the graph runs for ``user`` (the default one without).

    Its flexed and extended ends stay a soft-zone width (config/safety.yaml ``soft_zone_width_rad``) inside the
    user's joint limits, where the profile sets them.
    """
    from dataclasses import replace as replace_fields

    from exo.assessment import AssessmentProtocol
    from exo.paths import config_file
    from exo.safety import SafetyLimits

    protocol = AssessmentProtocol()
    caps = _user_caps(user) if user else {}
    margin = SafetyLimits.from_yaml(config_file("safety.yaml")).soft_zone_width_rad
    flexed = min(protocol.flexed_angle_rad, caps.get("joint_max_angle_rad", math.inf) - margin)
    extended = max(protocol.extended_angle_rad, caps.get("joint_min_angle_rad", -math.inf) + margin)
    if (flexed, extended) == (protocol.flexed_angle_rad, protocol.extended_angle_rad):
        return protocol
    return replace_fields(protocol, flexed_angle_rad=flexed, extended_angle_rad=extended)


def _user_caps(user: str) -> dict[str, float]:
    import os

    key = (user, os.environ.get("EXO_STORE", ""), os.environ.get("EXO_KEY_FILE", ""))
    if key not in _USER_CAPS:
        from exo.users import caps_for

        _USER_CAPS[key] = dict(caps_for(user))
    return _USER_CAPS[key]


_USER_CAPS: dict[tuple[str, str, str], dict[str, float]] = {}


def user_assistance(user: str) -> float:
    """``user``'s assist-as-needed level (-, 0-1; :mod:`exo.users.assistance`): the controller node's
    ``assistance``. The assessment runs at full level (it moves a passive knee)."""
    import os

    key = (user, os.environ.get("EXO_STORE", ""), os.environ.get("EXO_KEY_FILE", ""))
    if key not in _USER_ASSISTANCE:
        from exo.users import UserStore

        _USER_ASSISTANCE[key] = float(UserStore.open(None).profile(user).assistance.level)
    return _USER_ASSISTANCE[key]


_USER_ASSISTANCE: dict[tuple[str, str, str], float] = {}


def nodes_for(mode: str) -> list[NodeSpec]:
    """The nodes that run in ``mode`` ("sim", "real" or "replay"), in start order."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    return [n for n in NODES if mode in n.modes]


def active_nodes(mode: str, args: dict[str, object]) -> list[NodeSpec]:
    """The nodes of ``mode`` switched on by resolved ``args`` (see :attr:`NodeSpec.enabled_by`)."""
    return [n for n in nodes_for(mode) if n.enabled_by is None or bool(args[n.enabled_by])]


def arguments_for(mode: str) -> dict[str, LaunchArgument]:
    """The launch arguments that matter in ``mode`` (common ones plus those its nodes use).

    Defaults are the mode's own where a node of the mode declares one (``mode_defaults``).
    """
    common = ("namespace", "use_sim_time", "params_file", "log_level", "enclave_prefix", "user")
    nodes = nodes_for(mode)
    used = {arg for n in nodes for arg in n.arg_params.values()}
    used |= {n.enabled_by for n in nodes if n.enabled_by}
    defaults: dict[str, str] = {}
    for n in nodes:
        defaults.update(n.mode_defaults.get(mode, {}))
    return {
        k: (replace(v, default=defaults[k]) if k in defaults else v)
        for k, v in LAUNCH_ARGUMENTS.items()
        if k in common or k in used
    }


def resolve_arguments(mode: str, overrides: dict[str, str] | None = None) -> dict[str, str | int | float | bool]:
    """Defaults of ``mode``'s arguments with ``overrides`` applied, parsed and validated."""
    args = arguments_for(mode)
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(args)
    if unknown:
        raise ValueError(f"unknown argument(s) for mode {mode!r}: {', '.join(sorted(unknown))}")
    return {k: a.parse(k, overrides.get(k, a.default)) for k, a in args.items()}
