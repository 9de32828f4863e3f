"""The therapist's console in a real browser (Debian's headless Chromium driven by Selenium) against a sim graph.

The graph runs in real time (as at the bedside) with console:=true and the token required; the test checks
that requests without the token are refused, that the page's plots update, that the safety state text changes
when STOP is pressed on the page, and that torque_command is zero within two control periods of the press,
on the graph's clock: the press's time is the console's newest knee-sample stamp when the request arrived
(the console records it), and the first zero command's stamp is the safety monitor's. Screenshots go to the
test's output folder.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from exo import contract
from exo.nodes.console import console_token
from exo.paths import config_file
from exo.ros.convert import from_time_msg
from exo.safety import SafetyLimits
from exo.testing.browser import CHROMEDRIVER, CHROMIUM, chromium_driver

pytestmark = pytest.mark.ros

PERIOD = SafetyLimits.from_yaml(config_file("safety.yaml")).control_period_s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, token: str = "", stop_header: bool = True) -> tuple[int, str]:
    headers = {"X-Exo-Stop": "1"} if stop_header else {}
    if token:
        headers["X-Exo-Token"] = token
    request = urllib.request.Request(url, method=method, headers=headers, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode(errors="replace")


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them "
                           "when run as root; or: sudo apt install chromium chromium-driver)")
def test_console_page_plots_the_run_and_its_stop_zeroes_the_torque_within_two_periods(processes, probe, tmp_path,
                                                                                    monkeypatch):
    from selenium.webdriver.common.by import By

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers on the network
    port = _free_port()
    params = tmp_path / "console.yaml"
    params.write_text("/**/console:\n  ros__parameters:\n    require_token: true\n")
    graph = processes.graph("sim", start=False, controller="pid", level="1", lockstep="false", console="true",
                            console_port=str(port), params_file=str(params))
    commands = probe.subscribe(contract.TORQUE_COMMAND)
    events = probe.subscribe(contract.SAFETY_EVENTS)
    graph.start([n.name for n in graph.nodes if n.name != "sim_bridge"])
    probe.wait_for_nodes(["console", "controller", "safety_monitor"], timeout_s=90.0, graph=graph)
    graph.start(["sim_bridge"])
    probe.wait_for(lambda: len(commands) > 50, 60.0, "the graph running")
    token = console_token(str(graph.secrets.file("console_token_file")))
    base = f"http://127.0.0.1:{port}"

    # without the token: refused everywhere (page, script, data, stream, STOP); a wrong one too
    for method, path in (("GET", "/"), ("GET", "/static/console.js"), ("GET", "/api/state"), ("GET", "/api/stream"),
                         ("POST", "/api/stop"), ("GET", "/?token=wrong")):
        code, body = _http(method, base + path)
        assert code == 401 and "token" in body, f"{method} {path}: {code} {body[:80]}"
    # with it: nothing but STOP writes, and STOP only as the page sends it
    assert _http("GET", base + "/api/stop", token)[0] == 405
    assert _http("POST", base + "/api/reset", token)[0] == 404
    assert _http("POST", base + "/api/state", token)[0] == 405
    assert _http("POST", base + "/api/stop", token, stop_header=False)[0] == 400
    probe.spin_for(0.2)
    assert not [e for e in events if e.kind_name == "ESTOP"], "a refused request stopped the graph"

    driver = chromium_driver(tmp_path / "chromium-profile")
    try:
        driver.get(f"{base}/?token={token}")

        def page(script: str):
            return driver.execute_script(f"return {script};")

        def state_text() -> str:
            return driver.find_element(By.ID, "safety-state").text

        probe.wait_for(lambda: (page("window.exoConsole && window.exoConsole.redraws") or 0) > 3
                       and state_text() not in ("", "UNKNOWN"), 30.0, "the page's first plots and safety state")
        # the plot updates: more redraws, and its data reaches later graph time
        redraws, t_last = page("window.exoConsole.redraws"), page("window.exoConsole.last.session.graph_time_s")
        probe.spin_for(1.0)
        assert page("window.exoConsole.redraws") > redraws
        assert page("window.exoConsole.last.session.graph_time_s") > t_last
        assert page("document.querySelectorAll('#plot-angle canvas').length") >= 1
        before = state_text()
        assert before != "ESTOP"
        driver.save_screenshot(str(tmp_path / "console-running.png"))

        driver.find_element(By.ID, "stop").click()
        probe.wait_for(lambda: state_text() == "ESTOP", 10.0, "the page's safety state to read ESTOP")
        probe.wait_for(lambda: "STOP sent" in driver.find_element(By.ID, "stop-result").text, 10.0, "STOP's answer")
        time.sleep(0.3)
        driver.save_screenshot(str(tmp_path / "console-estop.png"))
        print(f"screenshots: {tmp_path / 'console-running.png'} {tmp_path / 'console-estop.png'}")
    finally:
        driver.quit()

    # torque_command is zero within two control periods of the press, both on the graph's clock
    stop = json.loads(_http("GET", base + "/api/state", token)[1])["stop"]
    assert stop["presses"] == 1 and stop["ok"] is True and stop["graph_time_s"] is not None, stop
    t_click = stop["graph_time_s"]
    probe.wait_for(lambda: any(c.source == "estop" for c in commands), 10.0, "e-stop commands")
    first = min((c for c in commands if c.source == "estop"), key=lambda c: from_time_msg(c.header.stamp))
    t_zero = from_time_msg(first.header.stamp)
    assert first.torque == 0.0
    assert t_zero - t_click <= 2 * PERIOD + 1e-9, f"press at t={t_click:.3f} s, first zero command at t={t_zero:.3f} s"
    estop_events = [e for e in events if e.kind_name == "ESTOP"]
    assert len(estop_events) == 1  # one press, one e-stop
    assert t_zero - from_time_msg(estop_events[0].header.stamp) <= 2 * PERIOD + 1e-9
    # and it holds: every later command is the e-stop's zero
    later = [c for c in commands if from_time_msg(c.header.stamp) >= t_zero]
    assert later and all(c.source == "estop" and c.torque == 0.0 for c in later)
