"""`exo tune-pid --twin full --level 1`, the README's command, and the same on the reduced twin.

Each run is the full Ziegler-Nichols search at its default settings (a few seconds): the written
ziegler_nichols.json must reproduce the gains recorded in config/controllers.yaml and
docs/twin-and-baseline.md (Ku 573.4 N m/rad on the full twin, 649.5 on the reduced one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exo.control import load_controller_params

# docs/twin-and-baseline.md section 2 (and the provenance comment of config/controllers.yaml)
DOCUMENTED = {"full": (573.4, 0.169), "reduced": (649.5, 0.158)}


@pytest.mark.parametrize("twin", ["full", "reduced"])
def test_exo_tune_pid_writes_ku_tu_and_the_ziegler_nichols_gains(exo, tmp_path: Path, twin: str):
    out = tmp_path / "tune-pid"
    result = exo("tune-pid", "--twin", twin, "--level", "1", "--out", str(out))
    assert result.code == 0, result
    doc = json.loads((out / "ziegler_nichols.json").read_text())
    assert doc["twin"] == twin and doc["level"] == 1 and doc["seed"] == 0
    ku, tu = doc["ku"], doc["tu_s"]
    assert f"Ziegler–Nichols on the {twin} twin, level 1: Ku={ku:.1f} N m/rad" in result.text, result
    # Ku: the geometric mean of the final bracket, bisected to rel_tol (1 %)
    low, high = doc["bracket"]
    assert low < ku < high and high / low < 1.0 + doc["rel_tol"]
    assert ku == pytest.approx((low * high) ** 0.5)
    # the experiments: kp doubled from 50 until sustained, then bisected; the bracket's ends are two of them
    runs = {round(r["kp"], 6): r for r in doc["experiments"]}
    assert doc["experiments"][0]["kp"] == 50.0 and len(runs) >= 6
    assert runs[round(high, 6)]["amplitude_ratio"] >= doc["sustained_ratio"] > runs[round(low, 6)]["amplitude_ratio"]
    # the documented result
    want_ku, want_tu = DOCUMENTED[twin]
    assert ku == pytest.approx(want_ku, rel=0.01) and tu == pytest.approx(want_tu, rel=0.03)
    # the rules (classic 0.6 Ku, 1.2 Ku/Tu, 0.075 Ku Tu; no overshoot 0.2 Ku, 0.4 Ku/Tu, Ku Tu / 15)
    classic, gentle = doc["gains"]["classic"], doc["gains"]["no_overshoot"]
    assert classic == pytest.approx({"kp": 0.6 * ku, "ki": 1.2 * ku / tu, "kd": 0.075 * ku * tu})
    assert gentle == pytest.approx({"kp": 0.2 * ku, "ki": 0.4 * ku / tu, "kd": ku * tu / 15.0})
    if twin == "full":  # the baseline's gains (config/controllers.yaml) are this command's classic gains
        for key, rule in (("pid", classic), ("pid_zn_no_overshoot", gentle)):
            committed = load_controller_params("pid", key=key)
            assert {k: committed[k] for k in ("kp", "ki", "kd")} == pytest.approx(rule, rel=0.01), key
