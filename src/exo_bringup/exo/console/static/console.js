// exo console: live plots, the safety state, the session, progress, and STOP.
// Data: Server-Sent Events from /api/stream (the console node's state); STOP: POST /api/stop.
// Exposes window.exoConsole (frames and plot redraws per second, events) for tests and benchmarks.
"use strict";

(function () {
  const token = new URLSearchParams(window.location.search).get("token") || "";
  const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url);
  const $ = (id) => document.getElementById(id);
  const stats = { fps: 0, redrawsPerS: 0, events: 0, frames: 0, redraws: 0, seq: 0, last: null };
  window.exoConsole = stats;

  // --- plots (uPlot) -------------------------------------------------------------------------
  const data = { t: [], angle: [], target: [], torque: [], effort: [] };
  let windowS = 20;
  let dirty = false;
  const width = () => Math.max(320, $("plot-angle").clientWidth || 600);
  const angleOpts = {
    width: width(), height: 220, legend: { live: false },
    scales: { x: { time: false } },
    series: [{ label: "t (s)" },
      { label: "knee angle", stroke: "#1565c0", width: 2 },
      { label: "target", stroke: "#2e7d32", width: 2, dash: [8, 6] }],
    axes: [{ label: "graph time (s)" }, { label: "deg" }],
  };
  const torqueOpts = {
    width: width(), height: 220, legend: { live: false },
    scales: { x: { time: false }, nm: {}, pct: { range: [0, 100] } },
    series: [{ label: "t (s)" },
      { label: "assistance torque (N m)", stroke: "#c62828", width: 2, scale: "nm" },
      { label: "own effort (%)", stroke: "#6a1b9a", width: 2, scale: "pct" }],
    axes: [{ label: "graph time (s)" }, { scale: "nm", label: "N m" },
      { scale: "pct", label: "%", side: 1, grid: { show: false } }],
  };
  const anglePlot = new uPlot(angleOpts, [[], [], []], $("plot-angle"));
  const torquePlot = new uPlot(torqueOpts, [[], [], []], $("plot-torque"));
  let progressPlot = null;
  let progressShown = -1;

  function append(points) {
    const n = points.t.length;
    if (!n) return;
    if (data.t.length && points.t[0] < data.t[data.t.length - 1]) {  // a new trial: start afresh
      for (const k of Object.keys(data)) data[k] = [];
    }
    for (let i = 0; i < n; i++) {
      data.t.push(points.t[i]);
      data.angle.push(points.angle_deg[i]);
      data.target.push(points.target_deg[i]);
      data.torque.push(points.torque_nm[i]);
      data.effort.push(points.effort_pct[i]);
    }
    const t0 = data.t[data.t.length - 1] - windowS;
    let cut = 0;
    while (cut < data.t.length && data.t[cut] < t0) cut++;
    if (cut) for (const k of Object.keys(data)) data[k].splice(0, cut);
    dirty = true;
  }

  // --- the rest of the page ------------------------------------------------------------------
  const fmtTime = (s) => {
    s = Math.max(0, Math.floor(s || 0));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0");
  };

  function showStatus(snap) {
    const st = snap.safety;
    const el = $("safety-state");
    el.textContent = st.state.replace("_", " ");
    el.className = "state " + st.state;
    $("safety-reason").textContent = st.reason + (st.limits.length ? " (limits: " + st.limits.join(", ") + ")" : "");
    $("torque-now").textContent = snap.torque.nm == null ? "-" : snap.torque.nm.toFixed(1) + " N m (" + snap.torque.source + ")";
    $("user").textContent = snap.session.user || "-";
    $("controller").textContent = snap.session.controller || "-";
    $("timer").textContent = fmtTime(snap.session.elapsed_s);
    $("effort-unit").textContent = snap.effort_kind === "calibrated"
      ? "(% of a maximal contraction, from the EMG calibration)" : "(% of the session's peak)";
    const live = $("live");
    live.textContent = snap.live ? "live" : "no data";
    live.className = "live " + (snap.live ? "on" : "off");
    if (snap.stop.presses && snap.stop.ok != null && !stopPending) {
      $("stop-result").textContent = (snap.stop.ok ? "STOP sent: " : "STOP failed: ") + snap.stop.message;
    }
    if (snap.progress && snap.progress.length !== progressShown) showProgress(snap.progress);
    else if (!snap.progress && snap.progress_error) $("progress-note").textContent = snap.progress_error;
  }

  function showProgress(rows) {
    progressShown = rows.length;
    $("progress-note").textContent = rows.length ? "" : "no sessions recorded yet";
    const cols = [["session", "session"], ["date", "date"], ["kind", "kind"], ["assistance", "assistance"],
      ["final_error_deg", "final error (deg)"], ["peak_torque_nm", "peak (N m)"], ["rms_torque_nm", "RMS (N m)"]];
    const table = $("progress-table");
    table.innerHTML = "";
    const head = table.insertRow();
    for (const [, name] of cols) { const th = document.createElement("th"); th.textContent = name; head.appendChild(th); }
    for (const r of rows) {
      const tr = table.insertRow();
      for (const [key] of cols) {
        const v = r[key];
        tr.insertCell().textContent = v == null ? "-" : (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(2) : v);
      }
    }
    const xs = rows.map((r) => r.session);
    const opts = {
      width: width(), height: 160, legend: { live: false }, scales: { x: { time: false }, lvl: { range: [0, 1] }, deg: {} },
      series: [{ label: "session" },
        { label: "assistance level", stroke: "#6a1b9a", width: 2, scale: "lvl", points: { show: true } },
        { label: "final error (deg)", stroke: "#c62828", width: 2, scale: "deg", points: { show: true } }],
      axes: [{ label: "session" }, { scale: "lvl", label: "level" }, { scale: "deg", label: "deg", side: 1, grid: { show: false } }],
    };
    const d = [xs, rows.map((r) => r.assistance), rows.map((r) => r.final_error_deg)];
    if (progressPlot) progressPlot.destroy();
    progressPlot = xs.length ? new uPlot(opts, d, $("plot-progress")) : null;
  }

  // --- data stream ---------------------------------------------------------------------------
  function connect() {
    const source = new EventSource(withToken("/api/stream?since=" + stats.seq));
    source.onmessage = (ev) => {
      const snap = JSON.parse(ev.data);
      stats.events++;
      stats.seq = snap.seq;
      stats.last = snap;
      windowS = snap.window_s || windowS;
      append(snap.points);
      showStatus(snap);
    };
    source.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "live off"; };
  }

  // --- STOP ----------------------------------------------------------------------------------
  let stopPending = false;
  $("stop").addEventListener("click", async () => {
    stopPending = true;
    $("stop").disabled = true;
    $("stop-result").textContent = "sending STOP...";
    try {
      const headers = { "X-Exo-Stop": "1" };
      if (token) headers["X-Exo-Token"] = token;
      const res = await fetch("/api/stop", { method: "POST", headers });
      const body = await res.json().catch(() => ({ ok: false, message: "HTTP " + res.status }));
      $("stop-result").textContent = (body.ok ? "STOP sent: " : "STOP failed: ") + body.message;
    } catch (err) {
      $("stop-result").textContent = "STOP failed: " + err + " (use the physical stop)";
    } finally {
      stopPending = false;
      $("stop").disabled = false;
    }
  });

  // --- drawing: once per animation frame, only when new data came --------------------------------
  let frames = 0, redraws = 0, t0 = performance.now();
  function frame(now) {
    frames++;
    if (dirty) {
      anglePlot.setData([data.t, data.angle, data.target]);
      torquePlot.setData([data.t, data.torque, data.effort]);
      dirty = false;
      redraws++;
      stats.redraws++;
    }
    stats.frames++;
    if (now - t0 >= 1000) {
      stats.fps = (frames * 1000) / (now - t0);
      stats.redrawsPerS = (redraws * 1000) / (now - t0);
      frames = 0; redraws = 0; t0 = now;
    }
    requestAnimationFrame(frame);
  }
  window.addEventListener("resize", () => {
    anglePlot.setSize({ width: width(), height: 220 });
    torquePlot.setSize({ width: width(), height: 220 });
  });
  requestAnimationFrame(frame);
  connect();
})();
