"""A user's caps as safety-monitor parameter overrides: :func:`caps_for`, for the graph.

The launch files and the runner apply the returned mapping on top of
``config/safety.yaml`` (and the actuator side's guard takes its copies, see
``exo/graph.py``). Only the caps the therapist set are returned; an unset cap
keeps the configuration's value. A user's range of motion and slew rate may
only narrow the device's (``config/safety.yaml``); the torque cap may be anything
in ``0 < cap <= actuator_torque_limit_nm``, like ``user_torque_cap_nm`` itself.
"""

from __future__ import annotations

from pathlib import Path

from exo.users.errors import ProfileError
from exo.users.profile import Caps
from exo.users.store import UserStore

#: Profile cap -> the safety monitor's parameter name (config/safety.yaml, exo.safety.SafetyLimits).
SAFETY_PARAMETERS: dict[str, str] = {
    "torque_cap_nm": "user_torque_cap_nm",
    "joint_min_angle_rad": "joint_min_angle_rad",
    "joint_max_angle_rad": "joint_max_angle_rad",
    "max_slew_rate_nm_per_s": "max_slew_rate_nm_per_s",
}


def caps_for(user_id: str, store: UserStore | Path | str | None = None, *,
             safety_config: Path | str | None = None) -> dict[str, float]:
    """The safety-monitor parameter overrides of ``user_id``'s caps.

    Args:
        user_id: the user's pseudonym.
        store: an open :class:`UserStore`, or the folder of one (opened with the key of ``$EXO_KEY_FILE`` or
            the passphrase of ``$EXO_PASSPHRASE``, never by asking); None = ``$EXO_STORE`` or the default.
        safety_config: the parameter file the overrides apply to (default ``config/safety.yaml``).

    Returns:
        ``{parameter: value}`` with parameter names of ``config/safety.yaml`` (``user_torque_cap_nm`` N m,
        ``joint_min_angle_rad``/``joint_max_angle_rad`` rad, ``max_slew_rate_nm_per_s`` N m/s), only for
        the caps that are set; ``{}`` if none is.

    Raises:
        ValueError (a :class:`~exo.users.errors.StoreError`): no store, wrong key, unknown user, or caps
            that would widen the device's range of motion or slew rate, or that do not form valid safety
            limits with the configuration (the message names the parameter).
    """
    opened = store if isinstance(store, UserStore) else UserStore.open(store)
    return safety_overrides(opened.profile(user_id).caps, safety_config, who=f"user {user_id!r}")


def safety_overrides(caps: Caps, safety_config: Path | str | None = None, *, who: str = "the user") -> dict[str, float]:
    """``caps`` as safety-monitor parameter overrides, checked against ``safety_config``
    (default ``config/safety.yaml``); see :func:`caps_for`. ``who`` names the user in errors.

    Raises:
        ProfileError: a cap widens the device's range of motion or slew rate, or the overrides do not form
            valid safety limits with the configuration (naming each parameter).
    """
    from exo.paths import config_file
    from exo.safety import SafetyLimits
    from exo.safety.limits import SafetyConfigError

    out = {SAFETY_PARAMETERS[name]: float(value) for name, value in caps.to_dict().items() if value is not None}
    path = Path(safety_config) if safety_config is not None else config_file("safety.yaml")
    base = SafetyLimits.from_yaml(path)
    problems = []
    if out.get("joint_min_angle_rad", base.joint_min_angle_rad) < base.joint_min_angle_rad:
        problems.append(f"joint_min_angle_rad {out['joint_min_angle_rad']:g} rad is below the device's "
                        f"{base.joint_min_angle_rad:g} rad")
    if out.get("joint_max_angle_rad", base.joint_max_angle_rad) > base.joint_max_angle_rad:
        problems.append(f"joint_max_angle_rad {out['joint_max_angle_rad']:g} rad is above the device's "
                        f"{base.joint_max_angle_rad:g} rad")
    if out.get("max_slew_rate_nm_per_s", base.max_slew_rate_nm_per_s) > base.max_slew_rate_nm_per_s:
        problems.append(f"max_slew_rate_nm_per_s {out['max_slew_rate_nm_per_s']:g} N m/s is above the device's "
                        f"{base.max_slew_rate_nm_per_s:g} N m/s")
    if not problems:
        try:
            SafetyLimits.from_dict({**base.to_dict(), **out}, origin=f"{path} with the caps of {who}")
        except SafetyConfigError as exc:
            problems += [f"{key}: {why}" for key, why in exc.problems]
    if problems:
        raise ProfileError(f"the caps of {who} do not fit {path}: " + "; ".join(problems) + " (exo user set changes them)")
    return out
