"""The result of an identification, as plain data: what ``exo identify --json`` prints.

:class:`IdentificationResult` carries the estimated MAS level, the seven per-subject parameters of
the subject generator (:data:`exo.twin.reflex.NOISY_PARAMETERS`, table units: deg, rad/s, 1/deg,
s/rad, - ), their 95 % intervals, the fit residual (N m), and the parameters the recording does not
identify with the reason. :meth:`IdentificationResult.subject` turns it back into the twin's
:class:`~exo.twin.reflex.SpasticityLevel` (the person's own twin: ``twin.reset(level, subject=...)``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from exo.twin.reflex import NOISY_PARAMETERS, SpasticityLevel


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists, int keys -> str."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str | bytes):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@dataclass(frozen=True)
class IdentificationResult:
    """An identified person's twin (see the module docstring).

    Attributes:
        mas_level: estimated Modified Ashworth level, 0-3.
        params: identified value of each generator parameter (table units).
        ci: 95 % interval of each parameter: the estimate +- 1.96 standard deviations of the Laplace
            posterior (data noise from the residual, its correlation counted) and the identifier's measured
            model error at ``mas_level`` (config/identification.yaml), within the parameter's bounds; for a
            parameter the recording does not identify, the generator's 95 % interval at ``mas_level``
            (what is known without it). Coverage: docs/identification.md, section 4.
        residual_nm: RMS of (replayed - recorded) interaction torque at the optimum, N m (raw samples,
            sensor noise included).
        residual_lowpass_nm: RMS difference of the compared (low-passed, repetition-averaged) samples, N m.
        reproduces_recording: whether the twin with the identified parameters reproduces the recording:
            ``residual_lowpass_nm`` within ``reproduce_limit_nm``. False means the fit found no twin that
            explains this assessment (the parameters are then not the person's: repeat the assessment);
            None for a result stored before the check existed.
        reproduce_limit_nm: the limit of that check, N m (:attr:`exo.identify.fit.IdentifySettings.refit_above_nm`).
        not_identifiable: parameter -> why this recording does not identify it.
        posterior_sd_ratio: data-only posterior / generator standard deviation of each parameter (1 = the
            recording adds nothing, small = well identified; the model error is not in it).
        level_scores: per level, ``screening_misfit`` (nominal subject), ``objective`` (MAP misfit +
            prior penalty, fitted levels only) and ``log_likelihood`` (the level's generator density of
            the identified parameters).
        twin: the twin the recording was replayed on.
        simulations: replays run.
        wall_time_s: identification time, s.
        load_average: the machine's 1-minute load average at the end (context for the time).
        recording: where the recording came from, its samples and duration.
    """

    mas_level: int
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    residual_nm: float
    residual_lowpass_nm: float
    not_identifiable: dict[str, str]
    posterior_sd_ratio: dict[str, float] = field(default_factory=dict)
    reproduces_recording: bool | None = None
    reproduce_limit_nm: float = math.nan
    level_scores: dict[int, dict[str, float]] = field(default_factory=dict)
    twin: str = ""
    simulations: int = 0
    wall_time_s: float = math.nan
    load_average: float = math.nan
    recording: dict[str, Any] = field(default_factory=dict)

    @property
    def identified(self) -> list[str]:
        """The parameters the recording identifies (all the others are in :attr:`not_identifiable`)."""
        return [n for n in NOISY_PARAMETERS if n not in self.not_identifiable]

    @property
    def warnings(self) -> list[str]:
        """What the reader must know before using this twin (empty: nothing)."""
        if self.reproduces_recording is False:
            return [f"the identified twin does not reproduce the recording: its compared samples differ by "
                    f"{self.residual_lowpass_nm:.2f} N m RMS (limit {self.reproduce_limit_nm:g} N m); these parameters "
                    "are not the person's. Repeat the assessment (the person relaxed, the straps snug) and identify again"]
        return []

    def subject(self) -> SpasticityLevel:
        """The identified parameters as the twin's :class:`SpasticityLevel` (for ``twin.reset(..., subject=)``)."""
        return SpasticityLevel(level=self.mas_level, **{n: float(self.params[n]) for n in NOISY_PARAMETERS})

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``mas_level``, ``params``, ``ci``, ``residual_nm``, ``not_identifiable``, ... (JSON-safe)."""
        out = asdict(self)
        out["identified"] = self.identified
        out["warnings"] = self.warnings
        return _clean(out)

    def to_json(self, indent: int | None = 1) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IdentificationResult:
        """Inverse of :meth:`to_dict` (e.g. a stored ``--json`` output)."""
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["ci"] = {k: (float(v[0]), float(v[1])) for k, v in data["ci"].items()}
        kwargs["level_scores"] = {int(k): v for k, v in data.get("level_scores", {}).items()}
        for name in ("residual_nm", "residual_lowpass_nm", "reproduce_limit_nm", "wall_time_s", "load_average"):
            if kwargs.get(name) is None:
                kwargs[name] = math.nan
        return cls(**kwargs)
