"""Identification from and into a user's encrypted records (``exo identify --user ID [--session N]``).

:func:`identify_user` picks the user's assessment session (the latest one holding a bag, unless a
number is given), decrypts its bag into the store's private temporary folder for the replay (deleted
when it ends, also on an error or SIGTERM), identifies the twin and writes back, encrypted:

- the whole result as the session's ``identification`` artefact (with the parameters the recording
  cannot identify and why; :meth:`exo.users.UserStore.get_json`), and
- the profile's ``identified_twin`` (:meth:`exo.users.UserStore.set_identified_twin`): MAS level,
  parameters, 95 % intervals, residual, the session it came from and the method. Per-user controllers
  are trained and evaluated on this twin (:func:`identified_subject`).

Nothing of it leaves the store in plaintext: the result's ``recording.source`` (a temporary path) is
replaced by the session's reference, ``user/session-N``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from exo.identify.result import IdentificationResult
from exo.twin.reflex import NOISY_PARAMETERS, SpasticityLevel

if TYPE_CHECKING:
    from exo.assessment import AssessmentProtocol
    from exo.users import SessionInfo, UserStore

#: Session kind of an assessment recording (``exo assess``, ``exo real --assess``).
ASSESSMENT_KIND = "assessment"
#: Name of the session artefact holding the whole identification result.
ARTEFACT = "identification"
#: Name of the session artefact holding the protocol the assessment ran (written by ``exo assess``/``exo real --assess``).
PROTOCOL_ARTEFACT = "protocol"


def method_name(twin: str) -> str:
    """The ``method`` recorded with an identified twin: replay of the recording on ``twin``, MAP fit."""
    return f"assessment-replay-map.{twin}"


def assessment_session(store: UserStore, user: str, number: int | None = None) -> SessionInfo:
    """Session ``number`` of ``user`` (it must be an assessment holding a bag), or the latest such session.

    Raises:
        exo.users.StoreError: no such user or session, not an assessment, no bag, or no assessment at all
            (the message says how to record one).
    """
    from exo.users import StoreError

    if number is not None:
        info = store.session(user, number)
        if info.kind != ASSESSMENT_KIND:
            raise StoreError(f"session {number} of user {user!r} is a {info.kind!r} session, not an assessment "
                             f"(identify from an assessment: exo assess --user {user})")
        if info.files == 0:
            raise StoreError(f"session {number} of user {user!r} holds no bag")
        return info
    found = [s for s in store.sessions(user) if s.kind == ASSESSMENT_KIND and s.files > 0]
    if not found:
        raise StoreError(f"user {user!r} has no assessment session to identify from; record one with "
                         f"exo assess --user {user} (sim) or exo real --user {user} --assess (hardware)")
    return found[-1]


def identify_user(store: UserStore, user: str, session: int | None = None, *, twin: str = "full",
                  workers: int = 2) -> tuple[IdentificationResult, SessionInfo]:
    """Identify ``user``'s twin from an assessment session and store it (see the module docstring).

    Args:
        store: the opened user store.
        user: the pseudonym.
        session: the assessment session's number (None: the latest assessment holding a bag).
        twin: the twin the recording is replayed on: "full" (MyoLeg) or "reduced".
        workers: processes for the simulations.

    Returns:
        The result (its ``recording.source`` is ``user/session-N``) and the session it came from.

    Raises:
        exo.users.StoreError: see :func:`assessment_session`; a bag that does not decrypt.
        exo.identify.recording.RecordingError: the bag is not a usable assessment recording.
    """
    from exo.identify.fit import identify
    from exo.identify.recording import AssessmentRecording

    info = assessment_session(store, user, session)
    protocol = session_protocol(store, user, info)
    with store.open_session(user, info.number) as bag:
        recording = AssessmentRecording.from_bag(bag, protocol)
        result = identify(recording, twin=twin, workers=workers)
    result = replace(result, recording={**result.recording, "source": f"{user}/session-{info.number}"})
    store.put_json(user, info.number, ARTEFACT, result.to_dict())
    store.set_identified_twin(user, profile_entry(result, info.number))
    return result, info


def session_protocol(store: UserStore, user: str, info: SessionInfo) -> AssessmentProtocol | None:
    """The protocol an assessment session ran (its ``protocol`` artefact), or None when it did not keep one.

    ``exo assess`` and ``exo real --assess`` keep the protocol the graph ran, which a user's range of motion
    can have narrowed; reading the bag with another protocol would compare the wrong windows.

    Raises:
        exo.identify.recording.RecordingError: the artefact does not describe a protocol.
    """
    from exo.assessment import AssessmentProtocol
    from exo.identify.recording import RecordingError

    if PROTOCOL_ARTEFACT not in info.artefacts:
        return None
    try:
        return AssessmentProtocol.from_mapping(store.get_json(user, info.number, PROTOCOL_ARTEFACT))
    except (ValueError, TypeError) as exc:
        raise RecordingError(f"session {info.number} of user {user!r}: its protocol does not parse ({exc})") from None


def profile_entry(result: IdentificationResult, session: int) -> dict:
    """The profile's ``identified_twin`` from a result: numbers only (the reasons stay in the artefact)."""
    clean = result.to_dict()
    return {
        "params": clean["params"],
        "ci": clean["ci"],
        "mas_level": result.mas_level,
        "residual_nm": clean["residual_nm"] if clean["residual_nm"] is not None else 0.0,
        "residual_lowpass_nm": clean["residual_lowpass_nm"],
        "posterior_sd_ratio": clean["posterior_sd_ratio"],
        "reproduces_recording": result.reproduces_recording,
        "session": session,
        "method": method_name(result.twin),
    }


def identified_subject(store: UserStore, user: str) -> SpasticityLevel:
    """``user``'s identified twin as the twin's subject (``twin.reset(..., subject=...)``).

    Raises:
        exo.users.StoreError: the user has no identified twin yet, or one that does not reproduce its assessment
            (the message says what to do).
    """
    from exo.users import StoreError

    twin = store.profile(user).identified_twin
    if not twin:
        raise StoreError(f"user {user!r} has no identified twin yet; run exo identify --user {user} "
                         "after an assessment")
    if twin.get("reproduces_recording") is False:
        raise StoreError(f"the identified twin of user {user!r} does not reproduce its assessment (session "
                         f"{twin.get('session')}): its parameters are not the person's. Repeat the assessment and "
                         f"identify again (exo identify --user {user})")
    params = twin["params"]
    missing = [n for n in NOISY_PARAMETERS if n not in params]
    if missing:
        raise StoreError(f"the identified twin of user {user!r} lacks {', '.join(missing)}")
    return SpasticityLevel(level=int(round(twin["mas_level"])), **{n: float(params[n]) for n in NOISY_PARAMETERS})
