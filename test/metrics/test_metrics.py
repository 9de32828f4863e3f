"""Metrics on synthetic signals whose answers can be worked out by hand."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exo.metrics import (
    FLAG_NAMES,
    METRIC_NAMES,
    TrialMetrics,
    compute_trial_metrics,
    settling_time_s,
    summarize,
)

DT = 0.01  # s, 100 Hz
START, TARGET = 1.5, 0.5  # rad: an extension step of 1 rad, band = 0.02 rad


def _time(n: int = 300) -> np.ndarray:
    return np.arange(n) * DT


def _ramp_then_hold(t: np.ndarray, t_reach: float, final: float = TARGET) -> np.ndarray:
    """Linear ramp from START to ``final`` reached at ``t_reach``, then constant."""
    return np.where(t < t_reach, START + (final - START) * t / t_reach, final)


def test_field_names_match_metric_and_flag_lists() -> None:
    assert [f.name for f in fields(TrialMetrics)] == [*METRIC_NAMES, *FLAG_NAMES]


def test_perfect_step_settles_at_first_sample_in_band() -> None:
    t = _time()
    theta = _ramp_then_hold(t, 1.0)  # 1 rad/s ramp; within 0.025 rad of 0.5 from t = 0.98 s
    zeros = np.zeros_like(t)
    m = compute_trial_metrics(t, theta, TARGET, zeros, zeros, band_fraction=0.025)
    assert m.settled and not m.rms_to_end
    assert m.settling_time_s == pytest.approx(0.98)
    assert m.final_error_deg == pytest.approx(0.0, abs=1e-12)
    assert m.overshoot_deg == 0.0
    assert m.torque_rate_rms_nm_s == 0.0


def test_band_is_around_final_value_not_target() -> None:
    t = _time()
    theta = _ramp_then_hold(t, 1.0, final=0.6)  # stops 0.1 rad short; step size still 1 rad
    m = compute_trial_metrics(t, theta, TARGET, np.zeros_like(t), np.zeros_like(t), band_fraction=0.025)
    assert m.settled
    assert m.settling_time_s == pytest.approx(0.98)  # 1.5 - 0.9 t <= 0.625 from t = 0.9722 s
    assert m.final_error_deg == pytest.approx(math.degrees(0.1))


def test_overshoot_in_extension_direction() -> None:
    t = _time()
    theta = np.full_like(t, TARGET)
    theta[:50] = START
    theta[50:100] = TARGET - 0.1  # 0.1 rad past the target (more extended)
    theta[100:110] = TARGET + 0.3  # on the flexion side: not an overshoot
    m = compute_trial_metrics(t, theta, TARGET, np.zeros_like(t), np.zeros_like(t))
    assert m.overshoot_deg == pytest.approx(math.degrees(0.1))
    assert m.settling_time_s == pytest.approx(1.10)


def test_flexion_step_overshoot_sign() -> None:
    t = _time()
    theta = np.full_like(t, 1.2)
    theta[0] = 0.2
    theta[10:20] = 1.25  # past a flexion target of 1.2 rad
    m = compute_trial_metrics(t, theta, 1.2, np.zeros_like(t), np.zeros_like(t))
    assert m.overshoot_deg == pytest.approx(math.degrees(0.05))


def test_rms_and_peak_until_settling() -> None:
    t = _time()
    theta = _ramp_then_hold(t, 1.0)  # settles at index 98 or 99 (band edge)
    tau = np.where(np.arange(t.size) % 2 == 0, 3.0, -3.0)  # |tau| = 3 everywhere
    tau[200] = -10.0  # after settling: in the peak, not in the RMS
    m = compute_trial_metrics(t, theta, TARGET, tau, np.zeros_like(t))
    assert m.rms_torque_nm == pytest.approx(3.0)
    assert m.peak_torque_nm == pytest.approx(10.0)


def test_never_settling_signal_is_flagged() -> None:
    t = _time()
    theta = TARGET + 0.1 * np.sin(2 * np.pi * 2.0 * t)  # +-0.1 rad oscillation forever
    theta[0] = START
    tau = np.ones_like(t) * 2.0
    tau[-1] = 4.0
    m = compute_trial_metrics(t, theta, TARGET, tau, np.zeros_like(t))
    assert not m.settled and m.rms_to_end
    assert math.isnan(m.settling_time_s)
    assert m.rms_torque_nm == pytest.approx(math.sqrt((299 * 4.0 + 16.0) / 300))  # whole trial
    assert math.isnan(settling_time_s(t, theta, TARGET, method="rolling_std"))


def test_entering_band_inside_final_window_is_not_settled() -> None:
    t = _time(300)
    theta = _ramp_then_hold(t, 2.8)  # reaches the band at t = 2.78 s, final window starts at 2.50 s
    assert math.isnan(settling_time_s(t, theta, TARGET))


def test_torque_rate_rms() -> None:
    t = _time(101)
    tau = 5.0 * t  # 5 N m/s ramp
    m = compute_trial_metrics(t, _ramp_then_hold(t, 0.5), TARGET, np.zeros_like(t), tau)
    assert m.torque_rate_rms_nm_s == pytest.approx(5.0)
    tau_alt = np.where(np.arange(101) % 2 == 0, 0.0, 1.0)  # 1 N m jumps every 10 ms
    m_alt = compute_trial_metrics(t, _ramp_then_hold(t, 0.5), TARGET, np.zeros_like(t), tau_alt)
    assert m_alt.torque_rate_rms_nm_s == pytest.approx(100.0)


def test_rolling_std_variant() -> None:
    t = _time()
    theta = _ramp_then_hold(t, 1.0)
    # Forward 50-sample window: std of a window straddling the ramp end exceeds 0.02 rad
    # until enough constant samples; compute the expected index directly.
    error = theta - TARGET
    sig = np.array([error[i : i + 50].std() for i in range(t.size - 49)])
    expected = t[int(np.flatnonzero(sig > 0.02)[-1]) + 1]
    got = settling_time_s(t, theta, TARGET, method="rolling_std", rolling_window_s=0.5)
    assert got == pytest.approx(expected)
    assert 0.5 < got < 0.98  # earlier than the band: the window looks ahead


@pytest.mark.parametrize("field", ["time", "angle", "tau_int", "tau_exo", "target"])
def test_nan_input_raises_clear_error(field: str) -> None:
    t = _time()
    arrays = {
        "time": t.copy(),
        "angle": _ramp_then_hold(t, 1.0),
        "tau_int": np.zeros_like(t),
        "tau_exo": np.zeros_like(t),
        "target": np.full_like(t, TARGET),
    }
    arrays[field][7] = np.nan
    with pytest.raises(ValueError, match="non-finite|not finite"):
        compute_trial_metrics(
            arrays["time"], arrays["angle"], arrays["target"], arrays["tau_int"], arrays["tau_exo"]
        )


def test_other_invalid_inputs() -> None:
    t = _time()
    z = np.zeros_like(t)
    with pytest.raises(ValueError, match="increasing"):
        compute_trial_metrics(t[::-1], z, 1.0, z, z)
    with pytest.raises(ValueError, match="samples"):
        compute_trial_metrics(t, z[:-1], 1.0, z, z)
    with pytest.raises(ValueError, match="step"):
        compute_trial_metrics(t, np.full_like(t, TARGET), TARGET, z, z)
    with pytest.raises(ValueError, match="method"):
        settling_time_s(t, _ramp_then_hold(t, 1.0), TARGET, method="bogus")  # type: ignore[arg-type]


def test_summarize() -> None:
    t = _time()
    z = np.zeros_like(t)
    settled = compute_trial_metrics(t, _ramp_then_hold(t, 1.0), TARGET, z + 1.0, z)
    other = compute_trial_metrics(t, _ramp_then_hold(t, 2.0), TARGET, z + 3.0, z)
    never = compute_trial_metrics(t, TARGET + 0.1 * np.sin(12.0 * t) + (t == 0) * 1.0, TARGET, z + 2.0, z)
    s = summarize([settled, other, never])
    assert s["trials"]["count"] == 3
    assert s["settling_time_s"]["count"] == 2
    times = [settled.settling_time_s, other.settling_time_s]
    assert 0.9 < times[0] < 1.0 and 1.9 < times[1] < 2.0
    assert s["settling_time_s"]["mean"] == pytest.approx(np.mean(times))
    assert s["settling_time_s"]["std"] == pytest.approx(np.std(times, ddof=1))
    assert s["peak_torque_nm"]["median"] == pytest.approx(2.0)
    assert s["settled"]["fraction"] == pytest.approx(2 / 3)
    assert summarize([])["peak_torque_nm"]["count"] == 0


@settings(max_examples=40, deadline=None)
@given(
    final=st.floats(0.0, 1.4),
    t_reach=st.floats(0.1, 2.0),
    tau=st.floats(-50.0, 50.0),
)
def test_properties_of_ramp_responses(final: float, t_reach: float, tau: float) -> None:
    t = _time()
    theta = _ramp_then_hold(t, t_reach, final=final)
    m = compute_trial_metrics(t, theta, TARGET, np.full_like(t, tau), np.full_like(t, tau))
    assert m.settled
    assert 0.0 <= m.settling_time_s <= t_reach + DT
    assert m.final_error_deg == pytest.approx(math.degrees(abs(final - TARGET)), abs=1e-9)
    assert m.overshoot_deg == pytest.approx(math.degrees(max(0.0, TARGET - final)), abs=1e-9)
    assert m.rms_torque_nm == pytest.approx(abs(tau)) and m.peak_torque_nm == pytest.approx(abs(tau))
