"""The acceptance gate: a new controller version is deployed only if it beats the deployed one.

Both run the same held-out subjects of the user's twin (:class:`~exo.personalize.evaluation.UserTwin`,
seed ``gate.seed``, never used by the search), through the safety monitor with the user's limits.
The candidate passes (:func:`judge`) only if, on the means over those subjects,

- its peak interaction torque is below ``(1 - min_peak_improvement)`` x the deployed one's,
- its RMS interaction torque until settling is below ``(1 - min_rms_improvement)`` x the deployed one's,
- its final error is at most the deployed one's + ``final_error_tolerance_deg``, and
- the safety monitor intervened (FALLBACK or worse) on at most ``max_extra_intervention_steps`` more
  control steps per trial than with the deployed one.

Otherwise it is kept as *rejected*, with the first failed condition as the reason. The limits are
named parameters of ``config/personalize.yaml`` (``gate:``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exo.personalize.evaluation import UserScore


@dataclass(frozen=True)
class GateConfig:
    """The gate's parameters (``config/personalize.yaml``, ``gate:``; see the module docstring)."""

    subjects: int = 8
    seed: int = 1000
    min_peak_improvement: float = 0.0
    min_rms_improvement: float = 0.0
    final_error_tolerance_deg: float = 0.0
    max_extra_intervention_steps: float = 0.0

    def __post_init__(self) -> None:
        if self.subjects < 1:
            raise ValueError(f"gate.subjects must be >= 1, got {self.subjects}")
        for name in ("min_peak_improvement", "min_rms_improvement"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"gate.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("final_error_tolerance_deg", "max_extra_intervention_steps"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"gate.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision: ``passed``, the reason (one line) and both means."""

    passed: bool
    reason: str
    candidate: dict[str, float]
    deployed: dict[str, float]

    def metrics(self) -> dict[str, Any]:
        """Plain numbers for the version's record (``candidate_*`` and ``deployed_*`` means)."""
        out: dict[str, Any] = {}
        for who, means in (("candidate", self.candidate), ("deployed", self.deployed)):
            out.update({f"{who}_{k}": v for k, v in means.items()})
        return out


def judge(candidate: UserScore, deployed: UserScore, config: GateConfig) -> GateVerdict:
    """Apply the gate (module docstring) to two scores on the same subjects."""
    if len(candidate.trials) != len(deployed.trials):
        raise ValueError(f"the gate compares the same subjects: {len(candidate.trials)} vs {len(deployed.trials)} trials")
    c, d = candidate.means, deployed.means
    checks = [
        (c["peak_torque_nm"] < (1.0 - config.min_peak_improvement) * d["peak_torque_nm"],
         f"peak interaction torque {c['peak_torque_nm']:.2f} N m vs deployed {d['peak_torque_nm']:.2f} N m"),
        (c["rms_torque_nm"] < (1.0 - config.min_rms_improvement) * d["rms_torque_nm"],
         f"RMS interaction torque {c['rms_torque_nm']:.2f} N m vs deployed {d['rms_torque_nm']:.2f} N m"),
        (c["final_error_deg"] <= d["final_error_deg"] + config.final_error_tolerance_deg,
         f"final error {c['final_error_deg']:.2f} deg vs deployed {d['final_error_deg']:.2f} deg"),
        (c["intervention_steps"] <= d["intervention_steps"] + config.max_extra_intervention_steps,
         f"safety-monitor interventions {c['intervention_steps']:.1f} vs deployed {d['intervention_steps']:.1f} "
         "steps per trial"),
    ]
    failed = [why for ok, why in checks if not ok]
    if failed:
        return GateVerdict(False, f"rejected: {failed[0]}", c, d)
    return GateVerdict(True, "accepted: " + "; ".join(why for _, why in checks[:3]), c, d)
