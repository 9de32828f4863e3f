"""What both MuJoCo knee twins do identically: the control step, the state accessor, the start check.

:class:`MuJoCoTwinStepping` is mixed into :class:`~exo.twin.full.MyoLegKneeTwin` and
:class:`~exo.twin.reduced.ReducedKneeTwin`. A twin provides ``model``, ``data``, ``config``,
``max_exo_torque_nm`` and the private ``_ctrl`` / ``_motor`` / ``_gear`` / ``_nstep`` /
``_reflex`` / ``_state`` attributes, ``_apply_reflex()`` and ``_make_state()``.
"""

from __future__ import annotations

import math

import mujoco

from exo.twin.interface import TwinState


class MuJoCoTwinStepping:
    #: Voluntary (user) drive added to every knee flexor / extensor on top of the spastic reflex
    #: drive before clipping to [0, 1] (-); set by :meth:`set_voluntary_drive`, kept across resets.
    _voluntary_flexor_drive: float = 0.0
    _voluntary_extensor_drive: float = 0.0

    def set_voluntary_drive(self, flexor: float, extensor: float) -> None:
        """Set the user's voluntary drive of the knee flexors / extensors (-, each in [0, 1]).

        It adds to the reflex drive of the spastic muscle groups from the next :meth:`step`
        on (muscle drive = clip(reflex + voluntary, 0, 1)), until changed. Both twins honour it.

        Raises:
            ValueError: a drive outside [0, 1] or not finite.
        """
        for name, value in (("flexor", flexor), ("extensor", extensor)):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"voluntary {name} drive must be in [0, 1], got {value!r}")
        self._voluntary_flexor_drive = float(flexor)
        self._voluntary_extensor_drive = float(extensor)

    def _initial_angle(self, initial_knee_angle_rad: float | None) -> float:
        """The trial's start angle, rad (config default if None); ValueError outside the exo's stops."""
        angle = (self.config.human.initial_knee_angle_rad if initial_knee_angle_rad is None
                 else float(initial_knee_angle_rad))
        lo, hi = self.config.start_range_rad
        if not lo <= angle <= hi:
            raise ValueError(f"initial_knee_angle_rad {angle} outside [{lo:.4f}, {hi:.4f}] rad "
                             "(knee range within the exo's stops)")
        return angle

    def step(self, exo_torque_nm: float) -> TwinState:
        """Apply the exo torque (N m, + = flexion, clipped to +-max) for one control step."""
        if self._reflex is None:
            raise RuntimeError("call reset() before step()")
        torque = float(exo_torque_nm)
        if not math.isfinite(torque):
            raise ValueError(f"exo torque must be finite, got {exo_torque_nm!r}")
        limit = self.max_exo_torque_nm
        torque = limit if torque > limit else -limit if torque < -limit else torque
        self._ctrl[self._motor] = -torque / self._gear
        self._apply_reflex()
        mujoco.mj_step(self.model, self.data, nstep=self._nstep)
        self._state = self._make_state()
        return self._state

    @property
    def state(self) -> TwinState:
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state
