"""A user's profile: pseudonym, caps set by the therapist, identified twin, controllers, sessions.

The profile is stored encrypted (``<store>/<user>/profile.enc``, JSON inside).
It holds no name and no free-text field: the user is a pseudonym
(``[a-z0-9-]{3,32}``; the clinic keeps the mapping to the person outside this
system), strings are identifiers, dates are days (``YYYY-MM-DD``), and
everything else is numbers. Units are SI (N m, rad, N m/s).

Every value is validated when a profile is built (:meth:`Profile.from_dict`,
:class:`Caps`): a bad one raises :class:`~exo.users.errors.ProfileError` naming
the field and the accepted range.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any

from exo.users.assistance import Assistance
from exo.users.errors import ProfileError

#: Pseudonym of a user: 3-32 of lowercase letters, digits and '-'.
USER_ID_PATTERN = re.compile(r"[a-z0-9-]{3,32}")
#: Clinician-rated Modified Ashworth levels the twin models.
MAS_LEVELS = (0, 1, 2, 3)
#: Hard ceiling of the actuator, N m (config/safety.yaml actuator_torque_limit_nm): no cap above it.
ACTUATOR_TORQUE_LIMIT_NM = 100.0
#: A session kind: "sim", "real", "replay", "assessment", "identification", ...
KIND_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,31}")
#: Names of identifiers: controller ids, metadata keys, JSON artefact names, method names.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
#: Longest string value of session metadata or a controller path, characters.
MAX_STRING_CHARS = 512
#: States of a controller version (see :class:`ControllerVersion`).
CONTROLLER_STATUSES = ("candidate", "deployed", "retired", "rejected")
#: Format tag of the profile JSON.
PROFILE_FORMAT = "exo-user-profile/1"

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def validate_user_id(user_id: object) -> str:
    """``user_id`` if it is a valid pseudonym; :class:`ProfileError` saying what is accepted otherwise."""
    if not isinstance(user_id, str) or not USER_ID_PATTERN.fullmatch(user_id):
        shown = repr(user_id) if isinstance(user_id, str) and len(user_id) <= 40 else "the given id"
        raise ProfileError(f"invalid user id {shown}: a pseudonym of 3-32 characters from a-z, 0-9 and '-' "
                           "(no names: the clinic keeps the pseudonym's mapping outside exo)")
    return user_id


def validate_kind(kind: object) -> str:
    """``kind`` if it is a valid session kind (``[a-z][a-z0-9-]{0,31}``)."""
    if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
        raise ProfileError(f"invalid session kind {kind!r}: lowercase letters, digits and '-' (sim, real, "
                           "replay, assessment, ...)")
    return kind


def validate_name(name: object, what: str) -> str:
    """``name`` if it is an identifier (``[a-z0-9][a-z0-9_.-]{0,63}``)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ProfileError(f"invalid {what} {name!r}: 1-64 of a-z, 0-9, '_', '.', '-', starting with a letter "
                           "or digit")
    return name


def validate_day(value: object, what: str) -> str:
    """``value`` if it is a day ``YYYY-MM-DD``."""
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise ProfileError(f"{what} must be a day YYYY-MM-DD, got {value!r}")


def today() -> str:
    """Today's date (local), ``YYYY-MM-DD``: the store keeps days, not times."""
    return date.today().isoformat()


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ProfileError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _int(value: object, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ProfileError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def validate_mas_level(level: object) -> int | None:
    """A clinician-rated Modified Ashworth level (0-3) or None (not rated)."""
    if level is None:
        return None
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or int(level) not in MAS_LEVELS:
        raise ProfileError(f"MAS level must be one of {', '.join(map(str, MAS_LEVELS))} (or unset), got {level!r}")
    return int(level)


def plain_value(value: object, what: str, *, strings: bool = True, depth: int = 0) -> Any:
    """``value`` as plain JSON: finite numbers, bools, None, short strings (if ``strings``), lists and
    string-keyed mappings of those. Keys are identifiers; no free text can hide in a key."""
    if depth > 8:
        raise ProfileError(f"{what}: nested too deeply")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _number(value, what)
    if isinstance(value, str):
        if not strings:
            raise ProfileError(f"{what} must hold numbers only, got the string {value[:20]!r}")
        if len(value) > MAX_STRING_CHARS:
            raise ProfileError(f"{what}: a string of {len(value)} characters; at most {MAX_STRING_CHARS}")
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            key = validate_name(k, f"key of {what}") if not (isinstance(k, str) and k.isidentifier()) else k
            if len(key) > 64:
                raise ProfileError(f"{what}: key {key[:20]!r}... longer than 64 characters")
            out[key] = plain_value(v, f"{what}.{key}", strings=strings, depth=depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [plain_value(v, f"{what}[{i}]", strings=strings, depth=depth + 1) for i, v in enumerate(value)]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return plain_value(value.tolist(), what, strings=strings, depth=depth)
    raise ProfileError(f"{what}: {type(value).__name__} is not storable (numbers, strings, lists, mappings)")


# -- caps -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Caps:
    """Per-user safety caps set by the therapist (None = not set: config/safety.yaml's value applies).

    Attributes:
        torque_cap_nm: largest |torque| the knee gets, N m; 0 < cap <= 100 (the actuator's limit). Becomes
            the safety monitor's ``user_torque_cap_nm``.
        joint_min_angle_rad: extension limit of this user's knee, rad (+ = flexion, 0 = straight).
        joint_max_angle_rad: flexion limit of this user's knee, rad; > joint_min_angle_rad.
        max_slew_rate_nm_per_s: fastest rise or reversal of the torque, N m/s; > 0.
    """

    torque_cap_nm: float | None = None
    joint_min_angle_rad: float | None = None
    joint_max_angle_rad: float | None = None
    max_slew_rate_nm_per_s: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, _number(value, f"caps.{f.name}"))
        cap = self.torque_cap_nm
        if cap is not None and not 0.0 < cap <= ACTUATOR_TORQUE_LIMIT_NM:
            raise ProfileError(f"caps.torque_cap_nm must be > 0 and <= {ACTUATOR_TORQUE_LIMIT_NM:g} N m (the "
                               f"actuator's limit), got {cap:g}")
        slew = self.max_slew_rate_nm_per_s
        if slew is not None and slew <= 0.0:
            raise ProfileError(f"caps.max_slew_rate_nm_per_s must be > 0 N m/s, got {slew:g}")
        lo, hi = self.joint_min_angle_rad, self.joint_max_angle_rad
        for name, angle in (("joint_min_angle_rad", lo), ("joint_max_angle_rad", hi)):
            if angle is not None and not -math.pi / 2 <= angle <= math.pi:
                raise ProfileError(f"caps.{name} must be within -pi/2..pi rad (a knee angle), got {angle:g}")
        if lo is not None and hi is not None and not lo < hi:
            raise ProfileError(f"caps.joint_min_angle_rad ({lo:g} rad) must be < caps.joint_max_angle_rad "
                               f"({hi:g} rad)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Caps:
        """Caps from ``{name: value}`` (unknown names refused)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ProfileError(f"caps must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ProfileError(f"unknown cap(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def updated(self, **values: float | None) -> Caps:
        """A copy with ``values`` replaced (validated)."""
        return replace(self, **values)


# -- sessions and controllers ---------------------------------------------------------------------
@dataclass(frozen=True)
class SessionInfo:
    """One session of a user in the index.

    Attributes:
        number: 1, 2, ... per user.
        kind: "sim", "real", "replay", "assessment", ...
        date: day it was recorded, ``YYYY-MM-DD``.
        metadata: what the recording said about itself (twin, level, controller, ...; plain JSON).
        recovered: made by :meth:`~exo.users.UserStore.recover` from a recording that was killed.
        truncated: an ``.mcap`` of its bag lacks its footer (cut short).
        files: number of bag files stored.
        artefacts: names of its JSON artefacts (``put_json``).
        ended_by: exception type that ended the recording block ("" = normal exit).
        recording_id: random id of the recording that made it (internal bookkeeping).
    """

    number: int
    kind: str
    date: str
    metadata: dict[str, Any] = field(default_factory=dict)
    recovered: bool = False
    truncated: bool = False
    files: int = 0
    artefacts: tuple[str, ...] = ()
    ended_by: str = ""
    recording_id: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionInfo:
        what = f"session {data.get('number')!r}"
        return cls(
            number=_int(data["number"], f"{what} number", 1),
            kind=validate_kind(data["kind"]),
            date=validate_day(data["date"], f"{what} date"),
            metadata=plain_value(data.get("metadata") or {}, f"{what} metadata"),
            recovered=bool(data.get("recovered", False)),
            truncated=bool(data.get("truncated", False)),
            files=_int(data.get("files", 0), f"{what} files"),
            artefacts=tuple(validate_name(a, "artefact name") for a in data.get("artefacts", ())),
            ended_by=str(data.get("ended_by", "")),
            recording_id=str(data.get("recording_id", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "kind": self.kind, "date": self.date, "metadata": dict(self.metadata),
                "recovered": self.recovered, "truncated": self.truncated, "files": self.files,
                "artefacts": list(self.artefacts), "ended_by": self.ended_by, "recording_id": self.recording_id}


@dataclass(frozen=True)
class ControllerVersion:
    """One version of a user's controller, with its lineage.

    Attributes:
        id: "c1", "c2", ... (or an identifier the caller chose).
        parent: id of the version it was derived from (None for a first one).
        created: day it was added, ``YYYY-MM-DD``.
        source_session: number of the session it was made from (None if none).
        path: where the controller lives (an exported policy folder, or a store reference); "" when the
            version is fully described by ``controller`` and ``params``.
        controller: its registry name (:data:`exo.control.CONTROLLERS`: "pid", "reference_pid", "sac", ...).
        params: the controller's keyword parameters (plain JSON), exactly what the graph is given.
        status: "candidate" (not judged yet), "deployed" (what ``exo sim/real --user`` runs; at most one),
            "retired" (deployed before), "rejected" (failed the acceptance gate; never deployed).
        metrics: numbers of the acceptance gate (candidate and deployed means on the user's twin, ...).
        reason: why it was deployed or rejected (one line, no personal data).
    """

    id: str
    parent: str | None
    created: str
    source_session: int | None
    path: str = ""
    controller: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "candidate"
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControllerVersion:
        path = data.get("path", "")
        if not isinstance(path, str) or len(path) > MAX_STRING_CHARS:
            raise ProfileError(f"controller path must be a string of at most {MAX_STRING_CHARS} "
                               f"characters, got {path!r}")
        controller = data.get("controller", "")
        if controller:
            validate_name(controller, "controller name")
        if not path and not controller:
            raise ProfileError(f"controller version {data.get('id')!r} needs a path or a controller name")
        status = data.get("status", "candidate")
        if status not in CONTROLLER_STATUSES:
            raise ProfileError(f"controller status must be one of {', '.join(CONTROLLER_STATUSES)}, got {status!r}")
        reason = data.get("reason", "")
        if not isinstance(reason, str) or len(reason) > MAX_STRING_CHARS:
            raise ProfileError(f"controller reason must be a string of at most {MAX_STRING_CHARS} characters")
        parent = data.get("parent")
        source = data.get("source_session")
        return cls(id=validate_name(data["id"], "controller id"),
                   parent=None if parent is None else validate_name(parent, "controller parent"),
                   created=validate_day(data["created"], "controller created"),
                   source_session=None if source is None else _int(source, "controller source_session", 1),
                   path=path, controller=controller,
                   params=plain_value(data.get("params") or {}, "controller params"),
                   status=status,
                   metrics=plain_value(data.get("metrics") or {}, "controller metrics", strings=False),
                   reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "parent": self.parent, "created": self.created,
                "source_session": self.source_session, "path": self.path, "controller": self.controller,
                "params": dict(self.params), "status": self.status, "metrics": dict(self.metrics),
                "reason": self.reason}


#: Keys of the identified twin written by the identification step.
TWIN_KEYS = ("params", "ci", "mas_level", "residual_nm", "session", "method", "date")


def validate_identified_twin(result: Mapping[str, Any]) -> dict[str, Any]:
    """The ``identified_twin`` section from an identification result.

    Args:
        result: ``params`` (twin parameter -> value, numbers), ``ci`` (parameter -> [low, high] or a number,
            numbers), ``mas_level`` (estimated level, a number), ``residual_nm`` (fit residual, N m, >= 0),
            ``session`` (session number it was identified on), ``method`` (an identifier), ``date`` (day;
            default today). Further keys are allowed if they hold numbers only (no free text).

    Raises:
        ProfileError: naming the bad key.
    """
    if not isinstance(result, Mapping):
        raise ProfileError(f"identified twin must be a mapping, got {type(result).__name__}")
    if not isinstance(result.get("params"), Mapping) or not result["params"]:
        raise ProfileError("identified twin needs 'params': a mapping of twin parameter -> value")
    out: dict[str, Any] = {}
    for key, value in result.items():
        if not isinstance(key, str) or not NAME_PATTERN.fullmatch(key):
            raise ProfileError(f"identified twin: invalid key {key!r}")
        if key == "method":
            out[key] = validate_name(value, "identified twin method")
        elif key == "date":
            out[key] = validate_day(value, "identified twin date")
        elif key == "session":
            out[key] = None if value is None else _int(value, "identified twin session", 1)
        elif key == "residual_nm":
            residual = _number(value, "identified twin residual_nm")
            if residual < 0:
                raise ProfileError(f"identified twin residual_nm must be >= 0 N m, got {residual:g}")
            out[key] = residual
        elif key == "mas_level":
            out[key] = None if value is None else _number(value, "identified twin mas_level")
        else:
            out[key] = plain_value(value, f"identified twin {key}", strings=False)
    out.setdefault("date", today())
    return out


# -- the profile ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """Everything the store keeps about one user (besides the sessions' files).

    Attributes:
        user_id: the pseudonym.
        created: day the user was created, ``YYYY-MM-DD``.
        mas_level: clinician-rated Modified Ashworth level 0-3 (None = not rated).
        caps: the therapist's safety caps.
        identified_twin: the twin identified for this user (None until the identification step ran).
        controllers: controller versions, oldest first.
        sessions: the session index, by number.
        assistance: the assist-as-needed level, the therapist's schedule and its history
            (:mod:`exo.users.assistance`).
    """

    user_id: str
    created: str
    mas_level: int | None = None
    caps: Caps = field(default_factory=Caps)
    identified_twin: dict[str, Any] | None = None
    controllers: tuple[ControllerVersion, ...] = ()
    sessions: tuple[SessionInfo, ...] = ()
    assistance: Assistance = field(default_factory=Assistance)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "profile") -> Profile:
        """A validated profile from its JSON form (:class:`ProfileError` naming ``origin`` if malformed)."""
        try:
            if data.get("format") != PROFILE_FORMAT:
                raise ProfileError(f"format {data.get('format')!r}, expected {PROFILE_FORMAT!r}")
            twin = data.get("identified_twin")
            return cls(
                user_id=validate_user_id(data["user_id"]),
                created=validate_day(data["created"], "created"),
                mas_level=validate_mas_level(data.get("mas_level")),
                caps=Caps.from_dict(data.get("caps")),
                identified_twin=None if twin is None else validate_identified_twin(twin),
                controllers=tuple(ControllerVersion.from_dict(c) for c in data.get("controllers", ())),
                sessions=tuple(SessionInfo.from_dict(s) for s in data.get("sessions", ())),
                assistance=Assistance.from_dict(data.get("assistance")),
            )
        except (KeyError, TypeError, AttributeError, ProfileError) as exc:
            why = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ProfileError(f"{origin}: malformed profile: {why}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"format": PROFILE_FORMAT, "user_id": self.user_id, "created": self.created,
                "mas_level": self.mas_level, "caps": self.caps.to_dict(),
                "identified_twin": None if self.identified_twin is None else dict(self.identified_twin),
                "controllers": [c.to_dict() for c in self.controllers],
                "sessions": [s.to_dict() for s in self.sessions], "assistance": self.assistance.to_dict()}

    def session(self, number: int) -> SessionInfo | None:
        """The session ``number``, or None."""
        return next((s for s in self.sessions if s.number == number), None)

    def controller(self, controller_id: str) -> ControllerVersion | None:
        """The controller version ``controller_id``, or None."""
        return next((c for c in self.controllers if c.id == controller_id), None)

    @property
    def deployed(self) -> ControllerVersion | None:
        """The deployed controller version (what ``exo sim/real --user`` runs), or None."""
        return next((c for c in self.controllers if c.status == "deployed"), None)
