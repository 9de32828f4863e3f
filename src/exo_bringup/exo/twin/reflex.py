"""Spastic stretch-reflex model: knee angle and velocity -> muscle drive (the paper's Eqs. 1-4).

The spasticity coefficient of a subject at knee angle ``theta`` (deg, in the
table's convention, see below) and knee velocity ``v`` (rad/s, same sign
convention) is, with ``sigma(x) = 1 / (1 + exp(-x))``::

    c_ang = L_ang * (2 - sigma(k_ang * (theta - a_flex)) - sigma(-k_ang * (theta - a_ext)))
    c_vel = L_vel * (2 - sigma(k_vel * (v + v_lim))     - sigma(-k_vel * (v - v_lim)))
    c     = c_ang + c_vel

exactly as recovered in ``digital-twin-facts.md``, with ``theta`` in true
degrees (``math.degrees``; the research code's ``(360/2*pi) * q`` unit bug and
its two cancelling linear terms are not reproduced). Both brackets are 0 inside
``[a_flex, a_ext]`` / ``[-v_lim, v_lim]`` and rise smoothly to ``L`` beyond
either threshold, since ``2 - sigma(k(x - lo)) - sigma(-k(x - hi)) =
sigma(-k(x - lo)) + sigma(k(x - hi))``.

Angle convention (where the paper's Table I angles live)
---------------------------------------------------------
Our knee angle ``q`` is + = flexion, 0 = straight (:mod:`exo.twin.interface`).
The table's ranges follow the paper's Fig. 2 convention, which is *not* ours.
The facts' equation puts ``a_flex`` in the lower-bound slot, so in the table's
coordinate flexion must be the *negative* direction; and level 0 (no
spasticity) spans ``[-45, 95]`` deg, i.e. 140 deg, the whole anatomical knee
range (135 deg flexion to 5 deg hyperextension, the exo's +5 deg stop) only if
the table's zero is the seated rest pose at 90 deg flexion (shank vertical).
Hence the default mapping ``seated_extension``::

    theta_table_deg = 90 - degrees(q)          v_table = -dq/dt

Level 1 ``[-35, 80]`` then means: reflex beyond 125 deg flexion or beyond
10 deg flexion (extension side); level 3 ``[-15, 60]``: beyond 105 deg or
30 deg flexion. The seated task (about 90 deg -> 7 deg flexion, the paper's
"83 deg extension rotation") thus runs into the extension-side thresholds of
levels 1-3, which is what makes level 3 unable to reach the target in the
paper. Alternatives are kept reachable (``ANGLE_MAPPINGS``):
``extension_from_straight`` (``theta = -degrees(q)``) and
``flexion_from_straight`` (``theta = +degrees(q)``, thresholds read as
[extension side, flexion side]).

Which muscles receive c
-----------------------
Each sigmoid term belongs to one side: ``sigma(-k(theta - a_flex))`` and the
``-v_lim`` term grow when the knee is (moving) towards flexion, which
stretches the extensors; the two others when it is (moving) towards
extension, which stretches the flexors. ``routing``:

- ``"stretched"`` (default, chosen): each group gets the terms of the side
  that stretches it (the stretch reflex acts in the stretched muscle;
  continuous, no switching at v = 0). Flexor drive + extensor drive = c.
- ``"velocity_sign"``: one research-code version: all of c to the extensors
  when the knee flexes (dq/dt > 0), to the flexors otherwise.
- ``"all"``: another version: every spastic muscle gets c.

Per-subject parameters: :func:`sample_subject` adds Gaussian noise of
standard deviation ``rel_sd * |value|`` (10 % in the paper) to every level
parameter, drawn from the caller's ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Literal, NamedTuple

import numpy as np

Routing = Literal["stretched", "velocity_sign", "all"]
ROUTINGS: tuple[str, ...] = ("stretched", "velocity_sign", "all")


@dataclass(frozen=True)
class AngleMapping:
    """Affine map from our knee angle to the table's angle: ``theta_deg = offset_deg + sign * degrees(q)``.

    Attributes:
        name: preset name.
        offset_deg: table angle at our straight knee (q = 0), deg.
        sign: +1 or -1; the table velocity is ``sign * dq/dt`` (rad/s).
    """

    name: str
    offset_deg: float
    sign: float

    def __post_init__(self) -> None:
        if self.sign not in (-1.0, 1.0):
            raise ValueError(f"AngleMapping.sign must be +1 or -1, got {self.sign}")


#: Named angle mappings (see the module docstring); "seated_extension" is the default.
ANGLE_MAPPINGS: dict[str, AngleMapping] = {
    "seated_extension": AngleMapping("seated_extension", 90.0, -1.0),
    "extension_from_straight": AngleMapping("extension_from_straight", 0.0, -1.0),
    "flexion_from_straight": AngleMapping("flexion_from_straight", 0.0, 1.0),
}


@dataclass(frozen=True)
class SpasticityLevel:
    """Reflex parameters of one Modified Ashworth level (or of one generated subject).

    Angles are in the table's convention (see :class:`AngleMapping`), deg; the
    slopes are per table unit.

    Attributes:
        level: Modified Ashworth level 0-3.
        a_flex_deg: lower angle threshold (the facts' ``a_flex`` slot), deg.
        a_ext_deg: upper angle threshold (the facts' ``a_ext`` slot), deg.
        v_lim_rad_s: velocity threshold (symmetric, +-v_lim), rad/s.
        l_ang: maximum angle-dependent coefficient L_ang (-).
        l_vel: maximum velocity-dependent coefficient L_vel (-).
        k_ang_per_deg: angle sigmoid slope, 1/deg.
        k_vel_s_per_rad: velocity sigmoid slope, s/rad.
    """

    level: int
    a_flex_deg: float
    a_ext_deg: float
    v_lim_rad_s: float
    l_ang: float
    l_vel: float
    k_ang_per_deg: float
    k_vel_s_per_rad: float

    def __post_init__(self) -> None:
        if self.level not in (0, 1, 2, 3):
            raise ValueError(f"spasticity level must be 0-3 (level 4 is not modelled), got {self.level}")
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value):
                raise ValueError(f"SpasticityLevel.{f.name} must be finite, got {value}")
        if self.a_flex_deg >= self.a_ext_deg:
            raise ValueError(f"a_flex_deg ({self.a_flex_deg}) must be < a_ext_deg ({self.a_ext_deg})")
        for name in ("v_lim_rad_s", "l_ang", "l_vel", "k_ang_per_deg", "k_vel_s_per_rad"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"SpasticityLevel.{name} must be >= 0, got {getattr(self, name)}")


#: Numeric parameters that get per-subject noise (all but ``level``).
NOISY_PARAMETERS: tuple[str, ...] = (
    "a_flex_deg",
    "a_ext_deg",
    "v_lim_rad_s",
    "l_ang",
    "l_vel",
    "k_ang_per_deg",
    "k_vel_s_per_rad",
)


def sample_subject(nominal: SpasticityLevel, rng: np.random.Generator, rel_sd: float = 0.1) -> SpasticityLevel:
    """A generated subject: every parameter + N(0, (rel_sd * |value|)^2), drawn from ``rng``.

    Parameters that must stay non-negative (v_lim, L, k) are clipped at 0; the
    two angle thresholds are kept ordered (swapped if the noise crossed them,
    which at 10 % noise needs a > 5 sigma draw). ``rel_sd = 0`` returns the
    nominal parameters (and draws nothing).
    """
    if not (rel_sd >= 0.0 and math.isfinite(rel_sd)):
        raise ValueError(f"rel_sd must be finite and >= 0, got {rel_sd}")
    if rel_sd == 0.0:
        return nominal
    values = np.array([getattr(nominal, n) for n in NOISY_PARAMETERS], dtype=float)
    noisy = values + rng.normal(0.0, 1.0, size=values.shape) * rel_sd * np.abs(values)
    out = dict(zip(NOISY_PARAMETERS, (float(x) for x in noisy), strict=True))
    for name in ("v_lim_rad_s", "l_ang", "l_vel", "k_ang_per_deg", "k_vel_s_per_rad"):
        out[name] = max(out[name], 0.0)
    lo, hi = sorted((out["a_flex_deg"], out["a_ext_deg"]))
    if lo == hi:
        hi = lo + 1e-6
    out["a_flex_deg"], out["a_ext_deg"] = lo, hi
    return replace(nominal, **out)


def sigmoid(x: float) -> float:
    """Logistic function 1 / (1 + exp(-x)), overflow-free for any finite x."""
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class ReflexOutput(NamedTuple):
    """One evaluation of the reflex model (a NamedTuple: cheap to build at every control step).

    Attributes:
        c_ang: angle-dependent coefficient (-).
        c_vel: velocity-dependent coefficient (-).
        flexor_drive: drive added to each knee-flexor muscle (-, before clipping to [0, 1]).
        extensor_drive: drive added to each knee-extensor muscle (-).
    """

    c_ang: float
    c_vel: float
    flexor_drive: float
    extensor_drive: float

    @property
    def coefficient(self) -> float:
        """The spasticity coefficient c = c_ang + c_vel (-)."""
        return self.c_ang + self.c_vel


class SpasticReflex:
    """The reflex of one subject: c(q, dq/dt) and its split over flexors/extensors.

    Args:
        params: the subject's parameters (table convention).
        mapping: how our knee angle maps to the table's (default ``seated_extension``).
        routing: which muscles get the coefficient ("stretched", "velocity_sign", "all").
    """

    def __init__(
        self,
        params: SpasticityLevel,
        mapping: AngleMapping = ANGLE_MAPPINGS["seated_extension"],
        routing: Routing = "stretched",
    ) -> None:
        if routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
        self.params = params
        self.mapping = mapping
        self.routing: Routing = routing

    def table_angle_deg(self, knee_angle_rad: float) -> float:
        """Our knee angle (rad, + = flexion) in the table's convention, deg."""
        return self.mapping.offset_deg + self.mapping.sign * math.degrees(knee_angle_rad)

    def evaluate(self, knee_angle_rad: float, knee_velocity_rad_s: float) -> ReflexOutput:
        """Reflex output at a human knee angle (rad, + = flexion) and velocity (rad/s, + = flexing)."""
        p = self.params
        sign = self.mapping.sign
        theta = self.mapping.offset_deg + sign * math.degrees(knee_angle_rad)
        v = sign * knee_velocity_rad_s
        # the four one-sided terms: low side (theta < a_flex, v < -v_lim) and high side
        ang_low = p.l_ang * sigmoid(-p.k_ang_per_deg * (theta - p.a_flex_deg))
        ang_high = p.l_ang * sigmoid(p.k_ang_per_deg * (theta - p.a_ext_deg))
        vel_low = p.l_vel * sigmoid(-p.k_vel_s_per_rad * (v + p.v_lim_rad_s))
        vel_high = p.l_vel * sigmoid(p.k_vel_s_per_rad * (v - p.v_lim_rad_s))
        c_ang = ang_low + ang_high
        c_vel = vel_low + vel_high
        if self.routing == "stretched":
            # table low side = more flexed when sign < 0 (extensors stretched)
            low, high = ang_low + vel_low, ang_high + vel_high
            extensor, flexor = (low, high) if sign < 0.0 else (high, low)
        elif self.routing == "velocity_sign":
            c = c_ang + c_vel
            extensor, flexor = (c, 0.0) if knee_velocity_rad_s > 0.0 else (0.0, c)
        else:
            flexor = extensor = c_ang + c_vel
        return ReflexOutput(c_ang=c_ang, c_vel=c_vel, flexor_drive=flexor, extensor_drive=extensor)

    def coefficient(self, knee_angle_rad: float, knee_velocity_rad_s: float) -> float:
        """The spasticity coefficient c = c_ang + c_vel at this knee state (-)."""
        return self.evaluate(knee_angle_rad, knee_velocity_rad_s).coefficient


def reference_coefficient(
    theta_table_deg: float, v_table_rad_s: float, p: SpasticityLevel
) -> tuple[float, float]:
    """(c_ang, c_vel) written literally as the facts' equations (table convention); for tests and plots."""

    def s(x: float) -> float:
        return sigmoid(x)

    c_ang = p.l_ang * (2.0 - s(p.k_ang_per_deg * (theta_table_deg - p.a_flex_deg)) - s(-p.k_ang_per_deg * (theta_table_deg - p.a_ext_deg)))
    c_vel = p.l_vel * (
        2.0 - s(p.k_vel_s_per_rad * (v_table_rad_s + p.v_lim_rad_s)) - s(-p.k_vel_s_per_rad * (v_table_rad_s - p.v_lim_rad_s))
    )
    return c_ang, c_vel
