"""The simulated user, the twin's voluntary drive, twin sessions and the recorded-EMG loader."""

from __future__ import annotations

import numpy as np
import pytest

from exo.intent.dataset import session_frames, simulate_session
from exo.intent.drive import CALIBRATION, CALIBRATION_S, CLASSES, EXTEND, FLEX, HOLD, VoluntaryUser
from exo.intent.emg_synth import CHANNEL_NAMES
from exo.intent.features import FeatureConfig
from exo.intent.loader import RecordingError, load_recording, save_npz
from exo.twin import make_twin

DT = 0.01


def _run(user: VoluntaryUser, seconds: float, angle: float = 1.0):
    return [user.step(DT, angle) for _ in range(int(round(seconds / DT)))]


def test_user_starts_with_the_calibration_protocol_and_labels_follow_the_drive():
    cmds = _run(VoluntaryUser(3), CALIBRATION_S + 30.0)
    intent = np.array([c.intent for c in cmds])
    starts = np.cumsum([0.0] + [c[1] for c in CALIBRATION])
    for (cls, _dur, _drive), t0 in zip(CALIBRATION, starts[:-1], strict=True):
        assert intent[int(round(t0 / DT)) + 5] == cls
    for c in cmds:
        if c.intent == EXTEND:
            assert c.extensor > c.flexor and c.velocity_rad_s <= 0.0
        elif c.intent == FLEX:
            assert c.flexor > c.extensor and c.velocity_rad_s >= 0.0
        else:
            assert c.velocity_rad_s == 0.0
        assert 0.0 <= c.flexor <= 1.0 and 0.0 <= c.extensor <= 1.0
    after = intent[int(CALIBRATION_S / DT):]
    assert {HOLD, EXTEND, FLEX} <= set(after.tolist())


def test_same_seed_same_user_and_the_onset_ramps_up():
    a = [(c.flexor, c.extensor, c.intent) for c in _run(VoluntaryUser(9), 20.0)]
    b = [(c.flexor, c.extensor, c.intent) for c in _run(VoluntaryUser(9), 20.0)]
    assert a == b
    ext = [c.extensor for c in _run(VoluntaryUser(9), 2.3)][200:]  # the calibration's extension
    assert ext[0] < ext[4] < max(ext)  # 50-150 ms ramp, not a step


def test_voluntary_drive_moves_the_twin_and_bad_drives_are_refused():
    twin = make_twin("reduced")
    twin.reset(1, seed=0)
    for _ in range(50):
        state = twin.step(0.0)
    relaxed = state.human_knee_angle_rad
    twin.reset(1, seed=0)
    twin.set_voluntary_drive(0.0, 0.4)
    for _ in range(50):
        state = twin.step(0.0)
    assert state.human_knee_angle_rad < relaxed - 0.3  # extensors extend the knee
    assert state.muscle_activations[1] > 0.3
    with pytest.raises(ValueError, match="extensor"):
        twin.set_voluntary_drive(0.0, 1.5)
    with pytest.raises(ValueError, match="flexor"):
        twin.set_voluntary_drive(float("nan"), 0.0)
    twin.set_voluntary_drive(0.0, 0.0)


@pytest.fixture(scope="module")
def session():
    return simulate_session(level=2, seed=123, duration_s=20.0)


def test_twin_session_is_labelled_and_emg_reflects_the_intent(session):
    assert session.emg_v.shape == (20000, len(CHANNEL_NAMES))
    assert len(session.intent) == 2000
    frames = session_frames(session, FeatureConfig())
    assert frames.x.shape == (1000, 42)
    assert np.all(np.isfinite(frames.x))
    # extension frames of the calibration: extensor MAV (inputs 0-2) above the rest frames'
    rest = (frames.time_s > 0.5) & (frames.time_s < 2.0)
    ext = (frames.time_s > 2.5) & (frames.time_s < 4.0)
    assert np.all(frames.intent[ext] == EXTEND)
    assert frames.x[ext, 0:3].mean() > frames.x[rest, 0:3].mean() + 1.0  # log units


def test_recordings_round_trip_npz_and_csv(session, tmp_path):
    p = save_npz(session, tmp_path / "s.npz")
    back = load_recording(p)
    np.testing.assert_array_equal(back.emg_v, session.emg_v)
    assert back.channel_names == session.channel_names
    assert back.intent[::10].tolist() == session.intent.tolist()
    a = session_frames(session, FeatureConfig())
    b = session_frames(back, FeatureConfig())
    np.testing.assert_allclose(a.x, b.x, rtol=1e-6)
    np.testing.assert_array_equal(a.intent, b.intent)

    csv = tmp_path / "s.csv"
    n = 3000
    with csv.open("w") as fh:
        fh.write(f"# sample_rate_hz=1000; calibration_s={CALIBRATION_S}\n")
        fh.write("time_s," + ",".join(CHANNEL_NAMES) + ",intent\n")
        for i in range(n):
            row = ",".join(f"{v:.9g}" for v in session.emg_v[i])
            fh.write(f"{i / 1000:.3f},{row},{CLASSES[session.intent[i // 10]]}\n")
    rec = load_recording(csv)
    np.testing.assert_allclose(rec.emg_v, session.emg_v[:n], rtol=1e-6)
    assert rec.intent[::10].tolist() == session.intent[:300].tolist()
    assert rec.calibration_s == CALIBRATION_S


def test_bad_recordings_name_the_problem(tmp_path):
    emg = np.zeros((100, 2))
    np.savez(tmp_path / "a.npz", emg=emg, channel_names=np.array(["a", "b"]))
    with pytest.raises(RecordingError, match="sample_rate_hz"):
        load_recording(tmp_path / "a.npz")
    bad = emg.copy()
    bad[5, 1] = np.nan
    np.savez(tmp_path / "b.npz", emg=bad, sample_rate_hz=1000.0, channel_names=np.array(["a", "b"]))
    with pytest.raises(RecordingError, match="non-finite"):
        load_recording(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", emg=emg, sample_rate_hz=1000.0, channel_names=np.array(["a", "b"]),
             intent=np.array(["walk"] * 100))
    with pytest.raises(RecordingError, match="walk"):
        load_recording(tmp_path / "c.npz")
    (tmp_path / "d.csv").write_text("time_s,a\n0,1\n")
    with pytest.raises(RecordingError, match="sample_rate_hz"):
        load_recording(tmp_path / "d.csv")
    with pytest.raises(RecordingError, match="unknown format"):
        load_recording((tmp_path / "e.txt", (tmp_path / "e.txt").write_text("x"))[0])


def test_full_twin_takes_the_voluntary_drive_and_each_electrode_sees_its_own_myoleg_muscle():
    from exo.intent.emg_synth import CHANNELS, EmgSynthesizer, source_indices

    twin = make_twin("full")
    state = twin.reset(0, seed=0)
    names = list(state.muscle_names)
    idx = source_indices(names)
    assert [names[i] for i in idx] == [c[1] for c in CHANNELS]
    twin.set_voluntary_drive(0.0, 0.5)
    for _ in range(20):
        state = twin.step(0.0)
    twin.set_voluntary_drive(0.0, 0.0)
    acts = np.asarray(state.muscle_activations)
    assert acts[names.index("vasmed_r")] > 0.3 and acts[names.index("semiten_r")] < 0.05
    emg = EmgSynthesizer(names, seed=1).generate_series(np.tile(acts, (50, 1)), 0.01)
    rms = np.std(emg[100:], axis=0)
    assert rms[0] > 3 * rms[4]  # vastus medialis electrode vs semitendinosus electrode


def test_training_on_recorded_sessions(tmp_path):
    """A lab's files (here twin sessions saved in the documented format, two channels renamed) train a model."""
    import json

    from exo.intent.train import TrainConfig, train

    files = {}
    for split, seeds in (("train", (1, 2)), ("val", (3,)), ("test", (4,))):
        files[split] = []
        for seed in seeds:
            s = simulate_session(level=seed % 4, seed=seed, duration_s=20.0)
            s.channel_names = ("vm", "rf", *s.channel_names[2:])
            files[split].append(save_npz(s, tmp_path / f"{split}-{seed}.npz"))
    card = train(TrainConfig(epochs=1, hidden=8, seq_frames=100), tmp_path / "m", recorded=files,
                 log=lambda _line: None)
    saved = json.loads((tmp_path / "m" / "card.json").read_text())
    assert saved["channel_names"][:2] == ["vm", "rf"]
    assert saved["data"]["test"] == [str(files["test"][0])]
    assert set(saved["test_metrics_by_controller"]) == {"recorded"}
    assert card["test_metrics"]["frames"] > 0
    with pytest.raises(RecordingError, match="train, val and test"):
        train(TrainConfig(epochs=1), tmp_path / "x", recorded={"train": files["train"]}, log=lambda _line: None)
