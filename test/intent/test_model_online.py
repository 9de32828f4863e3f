"""The LSTM (torch training = numpy inference), the online core (= offline pipeline), training end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exo.intent.dataset import session_frames, simulate_session
from exo.intent.drive import CALIBRATION_S, CLASSES, HOLD
from exo.intent.evaluate import macro_f1, onset_delays
from exo.intent.features import FeatureConfig
from exo.intent.model import NumpyIntentModel, base_card, export, make_torch_model
from exo.intent.online import IntentEstimatorCore, PacketError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    """An exported model with random weights (equivalence tests need no training)."""
    torch.manual_seed(0)
    fc = FeatureConfig()
    m = make_torch_model(42, hidden=16)
    m.mean.copy_(torch.randn(42) * 0.1)
    m.std.copy_(torch.rand(42) + 0.5)
    out = export(m, tmp_path_factory.mktemp("model"), {**base_card(fc, True, True, 16), "commit": "test"})
    return m, out


def test_numpy_inference_equals_torch(random_model):
    m, path = random_model
    x = np.random.default_rng(0).normal(size=(50, 42)).astype(np.float32)
    with torch.no_grad():
        logits, vel, _ = m(torch.from_numpy(x)[None])
    probs_t = torch.softmax(logits[0], -1).numpy()
    npm = NumpyIntentModel(path)
    probs, v = npm.run(x)
    np.testing.assert_allclose(probs, probs_t, atol=1e-5)
    np.testing.assert_allclose(v, vel[0].numpy() * npm.card["velocity_scale_rad_s"], atol=1e-5)


def test_a_model_whose_card_disagrees_with_its_weights_is_refused(random_model, tmp_path):
    _, path = random_model
    card = json.loads((path / "card.json").read_text())
    card["input_layout"] = card["input_layout"][:-2]
    (tmp_path / "card.json").write_text(json.dumps(card))
    (tmp_path / "model.npz").write_bytes((path / "model.npz").read_bytes())
    with pytest.raises(ValueError, match="inputs"):
        NumpyIntentModel(tmp_path)
    with pytest.raises(FileNotFoundError, match="model.npz missing"):
        NumpyIntentModel(tmp_path / "nowhere")


def _packets(session, packet=20):
    n = session.emg_v.shape[0]
    per = int(session.step_s * session.sample_rate_hz)
    for a in range(0, n, packet):
        step = (a + packet - 1) // per  # joint state of the packet's last step
        yield a / session.sample_rate_hz, session.emg_v[a:a + packet], (session.knee_angle_rad[step],
                                                                        session.knee_velocity_rad_s[step])


def test_online_core_reproduces_the_offline_pipeline_and_rejects_bad_packets(random_model):
    _, path = random_model
    session = simulate_session(level=3, seed=77, duration_s=20.0)
    frames = session_frames(session, FeatureConfig())
    probs_off, vel_off = NumpyIntentModel(path).run(frames.x)

    core = IntentEstimatorCore(NumpyIntentModel(path))
    names = list(session.channel_names)
    est = []
    for i, (t, x, knee) in enumerate(_packets(session)):
        if i == 100:  # garbage between good packets changes nothing
            for kwargs, reason in (
                ({"sample_rate_hz": 2000.0}, "wrong_rate"),
                ({"num_samples": 19}, "wrong_length"),
                ({"samples": np.full(x.size, np.nan)}, "non_finite"),
                ({"channel_names": names[::-1]}, "wrong_channels"),
            ):
                args = {"stamp_s": t, "sample_rate_hz": 1000.0, "channel_names": names, "num_samples": len(x),
                        "samples": x.ravel(), "knee": knee, **kwargs}
                with pytest.raises(PacketError) as info:
                    core.push(**args)
                assert info.value.reason == reason
        est += core.push(t, 1000.0, names, len(x), x.ravel(), knee)
    assert len(est) == len(frames.x)
    t = np.array([e.time_s for e in est])
    np.testing.assert_allclose(t, frames.time_s, atol=1e-9)
    calibrating = t < CALIBRATION_S - 1e-9
    assert all(e.confidence == 0.0 for e, c in zip(est, calibrating, strict=True) if c)
    live = ~calibrating
    probs_on = np.array([e.probabilities for e in est])[live]
    np.testing.assert_allclose(probs_on, probs_off[live], atol=1e-5)
    np.testing.assert_allclose(np.array([e.velocity_rad_s for e in est])[live], vel_off[live], atol=1e-5)


def test_metrics_on_known_predictions():
    true = np.array([0, 0, 0, 1, 1, 1, 0, 0, 2, 2, 2, 0])
    pred = np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0])
    t = np.arange(len(true)) * 0.02 + 0.02
    delays, misses = onset_delays(true, pred, t)
    assert delays == pytest.approx([0.04])  # hold ends at 0.06 s, first correct frame ends at 0.10 s
    assert misses == 1  # the flex onset is never detected
    f1, per = macro_f1(true, pred)
    assert per[2] == 0.0 and per[HOLD] > 0.5
    assert f1 == pytest.approx(np.mean(per))
    assert len(per) == len(CLASSES)
    # a class absent from the labels has no F1 and is left out of the mean; its false alarms still cost
    f1_absent, per_absent = macro_f1(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]))
    assert np.isnan(per_absent[2])
    assert f1_absent == pytest.approx((2 / 3 + 1.0) / 2)


def test_training_end_to_end_writes_a_model_and_its_card(tmp_path):
    from exo.intent.train import TrainConfig, train

    cfg = TrainConfig(train_subjects=4, val_subjects=4, test_subjects=4, duration_s=20.0, epochs=2, hidden=8,
                      seq_frames=100)
    card = train(cfg, tmp_path / "m", cache_dir=tmp_path / "cache", log=lambda _line: None)
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert files == {"model.npz", "card.json"}
    saved = json.loads((tmp_path / "m" / "card.json").read_text())
    assert saved["test_metrics"]["frames"] > 0
    assert set(saved["test_metrics"]["per_level"]) == {"0", "1", "2", "3"}
    assert saved["data"]["test"] == [[i % 4, 900_000 + i] for i in range(4)]
    assert not set(map(tuple, saved["data"]["train"])) & set(map(tuple, saved["data"]["test"]))
    assert card["input_layout"][-2:] == ["knee_angle_rad", "knee_velocity_rad_s/2"]
    assert set(saved["test_metrics_by_controller"]) == {"zero", "pid"}  # every test subject under both
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4 + 4 + 2 * 4
    assert len(list((tmp_path / "cache").glob("*-pid-*.npz"))) == 4
