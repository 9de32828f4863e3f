"""Many hypothesis examples of the safety properties: the monitor core and the actuator-side limiter.

Runs every property test in ``test/safety/test_*properties.py`` (the safety monitor's
``test_safety_properties.py``, the actuator guard's ``test_actuator_guard_properties.py``) through
pytest with ``--hypothesis-profile=bench`` (registered in ``test/safety/conftest.py``: no deadline, no
example database, so a run depends only on the code and the seed) and ``--hypothesis-show-statistics``.
A test runs ``round(weight x N)`` examples: ``weight`` is that of its
``@settings(max_examples=examples(weight))`` (the monitor's three properties: 1.5, 1.0 and 0.3), ``N``
is handed to the profile as ``EXO_HYPOTHESIS_EXAMPLES``. By default each file gets the smallest N
that makes it run ``--target`` examples (100,000: N = 35,714 for the monitor core, 100,000 for a
single guard property of weight 1); the weights are read by a quick ``--collect-only`` first.
``--examples N`` gives every file the same N instead.

**Batches.** Hypothesis keeps up to 10,000 recent test cases of a run in memory (with the monitor
property's 60-period inputs, about 0.15 MB each) plus some 30 kB per example run, so one process
running the 53,571 examples of that property would hold an estimated 3 GB or more. A file's examples
are therefore run in batches of at most ``--batch`` per unit weight (default 5,000; measured: 1.4 GB
peak for the 7,500 examples of the monitor property in one batch), each a fresh pytest process with
seed ``seed + batch index``: independent hypothesis runs whose examples add up to
``round(weight x N)`` per test (within one per batch). After a batch with a failure the bench stops
(``--keep-going`` runs the remaining batches).

**Counting.** Examples are counted exactly, not read from the statistics text: a small pytest plugin
(``ExampleCounter`` below, loaded into each batch with ``-p``) wraps each test's
``.hypothesis.inner_test`` (the attribute hypothesis documents for wrapping the test body) and counts
the calls of the test body, passing and failing; for a failing test they include the shrinking.
Hypothesis's statistics (per phase: passing / failing / invalid test cases, why it stopped) are
parsed where their format is recognised, as a cross-check, and kept verbatim in the JSON.

Prints per test: examples run, time, rate, and every counterexample (the exception, hypothesis's
failing-example text with its ``@reproduce_failure`` blob, and the pytest command reproducing its
batch); writes the same as JSON (default ``bench/results/safety_properties.json``) with the machine,
its load average, the seeds and the sources' hashes. Exits 1 if a property failed (a counterexample
or another error), pytest's code if it could not run the tests (2 interrupted, 4 usage error, 5 no
tests...), else 0.

Usage: ``python bench/bench_safety_properties.py [--target 100000 | --examples N] [--batch 5000]
[--seed S] [-k EXPR] [--keep-going] [--plan] [--out path]``; a quick check: ``--target 2000``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import platform
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DIR = REPO / "test" / "safety"
PATTERN = "test_*properties.py"
EXAMPLES_ENV = "EXO_HYPOTHESIS_EXAMPLES"  # read by test/safety/conftest.py (the bench profile)
RECORDS_ENV = "EXO_BENCH_SAFETY_RECORDS"  # where ExampleCounter writes a batch's records
DEFAULT_TARGET = 100_000  # examples per test file (the monitor core; the actuator guard)
DEFAULT_BATCH = 5_000
WEIGHT_PROBE = 10_000  # N of the collection that reads the tests' weights
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "safety_properties.json"
SOURCES = ("src/exo_bringup/exo/safety/monitor.py", "src/exo_bringup/exo/safety/limits.py",
           "src/exo_bringup/exo/safety/actuator_guard.py")


@dataclass
class TestRecord:
    """What one property test did in one batch."""

    nodeid: str
    file: str
    planned_examples: int | None  # max_examples of the test's settings under the bench profile
    examples: int = 0  # calls of the test body (passing + failing; a failing test's include shrinking)
    failing_calls: int = 0
    first_failure_at_call: int | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0  # process CPU time over the test (single-threaded: its computation)
    outcome: str = "not run"  # passed / failed / skipped / error / not run
    counterexamples: list[str] = field(default_factory=list)
    error: str | None = None
    stopped_because: str | None = None
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    statistics: str | None = None


_PHASE = re.compile(r"during (\w+) phase \(([\d.]+) seconds?\)")
_COUNTS = re.compile(r"(\d+) passing\D+(\d+) failing\D+(\d+) invalid")
_STOPPED = re.compile(r"Stopped because (.+)")
_FALSIFYING = re.compile(r"^(Falsifying example|Failing test case)", re.MULTILINE)


def parse_statistics(text: str) -> tuple[dict[str, dict[str, float]], str | None]:
    """Per phase {seconds, passing, failing, invalid} and the stop reason, from hypothesis's statistics text.

    The text's format is not a stable API: what is not recognised is left out (the bench's count comes
    from :class:`ExampleCounter`; the text itself is kept in the JSON).
    """
    phases: dict[str, dict[str, float]] = {}
    current: dict[str, float] | None = None
    stopped = None
    for line in text.splitlines():
        if m := _PHASE.search(line):
            current = phases.setdefault(m.group(1), {"seconds": float(m.group(2))})
        elif (m := _COUNTS.search(line)) and current is not None:
            current.update(passing=int(m.group(1)), failing=int(m.group(2)), invalid=int(m.group(3)))
        elif m := _STOPPED.search(line):
            stopped = m.group(1).strip()
    return phases, stopped


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups; hypothesis raises a group for distinct bugs."""
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, (list, tuple)) and inner:
        return [leaf for e in inner for leaf in _leaves(e)]
    return [exc]


def counterexamples_of(exc: BaseException | None, report_information: str = "") -> list[str]:
    """One text per distinct failure hypothesis found: the exception, its failing input and reproduce blob.

    Hypothesis attaches the failing input ("Falsifying example: ..." in older versions, "Failing test
    case: ..." in newer ones) to the exception as notes (PEP 678), one exception per distinct bug;
    older versions printed it through their reporter (``item.hypothesis_report_information``).
    """
    out = []
    for leaf in _leaves(exc) if exc is not None else []:
        notes = "\n".join(str(n) for n in getattr(leaf, "__notes__", ()))
        if _FALSIFYING.search(notes):
            out.append(f"{type(leaf).__name__}: {leaf}\n{notes}".strip())
    if not out and _FALSIFYING.search(report_information):
        starts = [m.start() for m in _FALSIFYING.finditer(report_information)]
        out = [report_information[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return out


class ExampleCounter:
    """Pytest plugin: counts the calls of each hypothesis test's body, keeps outcome and reports, writes JSON."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.records: dict[str, TestRecord] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Record every hypothesis test collected and the example count its settings ask for."""
        from hypothesis import is_hypothesis_test

        for item in items:
            obj = getattr(item, "obj", None)
            if obj is None or not is_hypothesis_test(obj):
                continue
            s = getattr(obj, "_hypothesis_internal_use_settings", None)
            self.records[item.nodeid] = TestRecord(
                nodeid=item.nodeid, file=item.nodeid.split("::")[0],
                planned_examples=getattr(s, "max_examples", None))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, None]:
        """Wrap the test body (``.hypothesis.inner_test``) with a counter for the duration of the call."""
        rec = self.records.get(item.nodeid)
        if rec is None:
            yield
            return
        handle = item.obj.hypothesis  # type: ignore[attr-defined]
        body = handle.inner_test
        handle.inner_test = self._counted(body, rec)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            rec.wall_s += time.perf_counter() - wall0
            rec.cpu_s += time.process_time() - cpu0
            handle.inner_test = body

    @staticmethod
    def _counted(body: Callable[..., Any], rec: TestRecord) -> Callable[..., Any]:
        @functools.wraps(body)
        def counted(*args: Any, **kwargs: Any) -> Any:
            rec.examples += 1
            try:
                return body(*args, **kwargs)
            except BaseException:
                rec.failing_calls += 1
                if rec.first_failure_at_call is None:
                    rec.first_failure_at_call = rec.examples
                raise

        return counted

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        """Keep the outcome, hypothesis's statistics and failing examples of each recorded test."""
        report: pytest.TestReport = (yield).get_result()
        rec = self.records.get(item.nodeid)
        if rec is None or (call.when != "call" and not report.failed):
            return
        if call.when != "call":  # a failing setup or teardown
            rec.outcome = "error"
            rec.error = (rec.error or "") + f"[{call.when}] {report.longreprtext[-4000:]}"
            return
        rec.outcome = report.outcome
        stats = getattr(item, "hypothesis_statistics", None)
        if stats:
            rec.statistics = stats
            rec.phases, rec.stopped_because = parse_statistics(stats)
        if report.failed:
            exc = call.excinfo.value if call.excinfo is not None else None
            rec.counterexamples = counterexamples_of(exc, getattr(item, "hypothesis_report_information", "") or "")
            rec.error = f"{type(exc).__name__}: {exc}"[-4000:] if exc is not None else report.longreprtext[-4000:]

    def pytest_unconfigure(self) -> None:
        """Write the records and this process's peak memory (also after an interrupted run)."""
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
        self.out.write_text(json.dumps({"max_rss_mb": round(rss_mb, 1),
                                        "tests": [asdict(r) for r in self.records.values()]}))


def pytest_configure(config: pytest.Config) -> None:
    """Active when this file is loaded into a batch's pytest with ``-p``: register the counter."""
    out = os.environ.get(RECORDS_ENV)
    if out and not config.pluginmanager.has_plugin("exo-example-counter"):
        config.pluginmanager.register(ExampleCounter(Path(out)), "exo-example-counter")


@dataclass
class Batch:
    """One pytest process on one test file: its examples per unit weight, seed, exit code, each test's record."""

    index: int
    file: str
    examples_per_weight: int
    seed: int
    exit_code: int | None = None
    wall_s: float = 0.0
    max_rss_mb: float | None = None
    tests: list[TestRecord] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """A test failed, or pytest did not run them all."""
        return self.exit_code != 0 or any(t.outcome in ("failed", "error") for t in self.tests)


def batch_sizes(total: int, per_batch: int) -> list[int]:
    """``total`` split into ``ceil(total / per_batch)`` near-equal parts."""
    k = max(1, math.ceil(total / per_batch))
    return [total // k + (i < total % k) for i in range(k)]


def batch_pytest_args(file: str, seed: int, keyword: str | None) -> list[str]:
    """The pytest arguments of a batch (paths relative to the repository, which is the cwd)."""
    cmd = [file, "--hypothesis-profile=bench", "--hypothesis-show-statistics", f"--hypothesis-seed={seed}",
           "-o", "timeout=0",  # pyproject's per-test timeout (300 s) is for CI-sized runs
           "-p", "no:cacheprovider", "-q"]
    return [*cmd, "-k", keyword] if keyword else cmd


def run_batch(batch: Batch, keyword: str | None, collect_only: bool = False) -> str:
    """Run one batch as ``python -m pytest`` with the counter plugin; fill ``batch`` from its records.

    pytest's output goes to this process's, except with ``collect_only``, where it is returned.
    """
    with tempfile.TemporaryDirectory(prefix="bench_safety_") as tmp:
        records = Path(tmp) / "records.json"
        env = {**os.environ, EXAMPLES_ENV: str(batch.examples_per_weight), RECORDS_ENV: str(records),
               "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parent),
                                                         os.environ.get("PYTHONPATH", "")) if p)}
        cmd = [sys.executable, "-m", "pytest", *batch_pytest_args(batch.file, batch.seed, keyword),
               "-p", Path(__file__).stem, *(["--collect-only"] if collect_only else [])]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, check=False, text=True,
                              capture_output=collect_only)
        batch.exit_code = proc.returncode
        batch.wall_s = time.perf_counter() - t0
        if records.exists():
            data = json.loads(records.read_text())
            batch.max_rss_mb = data["max_rss_mb"]
            names = {f.name for f in fields(TestRecord)}
            batch.tests = [TestRecord(**{k: v for k, v in t.items() if k in names}) for t in data["tests"]]
    return (proc.stdout or "") + (proc.stderr or "")


def collect_weights(file: str, keyword: str | None) -> tuple[dict[str, float], int, str]:
    """Each selected property test of ``file`` and its weight (its max_examples under the bench profile / N).

    Returns the weights, pytest's exit code of the collection (5: nothing selected) and its output.
    """
    probe = Batch(index=-1, file=file, examples_per_weight=WEIGHT_PROBE, seed=0)
    output = run_batch(probe, keyword, collect_only=True)
    return ({t.nodeid: (t.planned_examples or 0) / WEIGHT_PROBE for t in probe.tests},
            int(probe.exit_code or 0), output)


def planned_examples(weights: dict[str, float], n: int, per_batch: int) -> int:
    """Examples the tests of ``weights`` run with N = ``n`` split in batches (each test rounds per batch)."""
    return sum(max(1, round(w * nb)) for nb in batch_sizes(n, per_batch) for w in weights.values())


def examples_for_target(weights: dict[str, float], target: int, per_batch: int) -> int:
    """The smallest N (examples per unit weight) making the tests of ``weights`` run >= ``target`` in all."""
    n = max(1, math.ceil(target / max(sum(weights.values()), 1e-9)) - 2)
    while planned_examples(weights, n, per_batch) < target:
        n += 1
    return n


def reproduce_command(nodeid: str, batch: Batch) -> str:
    """The command re-running one test exactly as in ``batch`` (same examples, same seed)."""
    return (f"{EXAMPLES_ENV}={batch.examples_per_weight} python -m pytest '{nodeid}' --hypothesis-profile=bench "
            f"--hypothesis-seed={batch.seed} -o timeout=0")


def aggregate(batches: list[Batch]) -> list[dict[str, Any]]:
    """Each test summed over the batches: examples, time, outcome, counterexamples, hypothesis's counts."""
    tests: dict[str, dict[str, Any]] = {}
    for b in batches:
        for r in b.tests:
            t = tests.setdefault(r.nodeid, {
                "nodeid": r.nodeid, "file": r.file, "planned_examples": 0, "examples": 0, "failing_calls": 0,
                "wall_s": 0.0, "cpu_s": 0.0, "batches": 0, "outcome": "not run", "counterexamples": [],
                "errors": [], "stopped_because": [], "hypothesis_counts": {}})
            t["planned_examples"] += r.planned_examples or 0
            t["examples"] += r.examples
            t["failing_calls"] += r.failing_calls
            t["wall_s"] += r.wall_s
            t["cpu_s"] += r.cpu_s
            t["batches"] += r.outcome != "not run"
            rank = ["not run", "skipped", "passed", "failed", "error"]
            if rank.index(r.outcome if r.outcome in rank else "error") > rank.index(t["outcome"]):
                t["outcome"] = r.outcome if r.outcome in rank else "error"
            for text in r.counterexamples:
                t["counterexamples"].append({"batch": b.index, "seed": b.seed,
                                             "examples_per_weight": b.examples_per_weight,
                                             "first_failing_call": r.first_failure_at_call, "text": text,
                                             "reproduce": reproduce_command(r.nodeid, b)})
            if r.error and not r.counterexamples:
                t["errors"].append({"batch": b.index, "seed": b.seed, "error": r.error,
                                    "reproduce": reproduce_command(r.nodeid, b)})
            if r.stopped_because and r.stopped_because not in t["stopped_because"]:
                t["stopped_because"].append(r.stopped_because)
            for phase, counts in r.phases.items():
                acc = t["hypothesis_counts"].setdefault(phase, {})
                for k, v in counts.items():
                    acc[k] = round(acc.get(k, 0) + v, 2)
    for t in tests.values():
        t["wall_s"], t["cpu_s"] = round(t["wall_s"], 3), round(t["cpu_s"], 3)
    return list(tests.values())


def totals(tests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Examples, time and counterexamples summed per test file and over all."""
    out: dict[str, dict[str, Any]] = {}
    for key in [*dict.fromkeys(t["file"] for t in tests), "all"]:
        ts = [t for t in tests if key in ("all", t["file"])]
        out[key] = {"tests": len(ts), "examples": sum(t["examples"] for t in ts),
                    "planned_examples": sum(t["planned_examples"] for t in ts),
                    "wall_s": round(sum(t["wall_s"] for t in ts), 2), "cpu_s": round(sum(t["cpu_s"] for t in ts), 2),
                    "counterexamples": sum(len(t["counterexamples"]) for t in ts),
                    "failed": sum(t["outcome"] in ("failed", "error") for t in ts)}
    return out


def print_results(tests: list[dict[str, Any]]) -> None:
    """Per test: examples run, time, rate, outcome; then every counterexample and error in full."""
    print(f"\n{'test':64s} {'planned':>8s} {'run':>8s} {'wall s':>8s} {'cpu s':>8s} {'ex/s':>7s}  outcome")
    for t in tests:
        rate = t["examples"] / t["wall_s"] if t["wall_s"] > 0 else 0.0
        name = t["nodeid"] if len(t["nodeid"]) <= 64 else "..." + t["nodeid"][-61:]
        n_ce = len(t["counterexamples"])
        print(f"{name:64s} {t['planned_examples']:8d} {t['examples']:8d} {t['wall_s']:8.1f} {t['cpu_s']:8.1f} "
              f"{rate:7.0f}  {t['outcome']}" + (f", {n_ce} counterexample(s)" if n_ce else ""))
    for t in tests:
        for i, ce in enumerate(t["counterexamples"], 1):
            print(f"\n--- {t['nodeid']}: counterexample {i} (batch {ce['batch'] + 1}, seed {ce['seed']}, "
                  f"first failing call {ce['first_failing_call']})\n{ce['text']}\nreproduce: {ce['reproduce']}")
        for e in t["errors"]:
            print(f"\n--- {t['nodeid']}: error (batch {e['batch'] + 1}, seed {e['seed']})\n{e['error']}\n"
                  f"reproduce: {e['reproduce']}")


def _sha1(rel: str) -> str | None:
    path = REPO / rel
    return hashlib.sha1(path.read_bytes()).hexdigest()[:10] if path.exists() else None


def source_state(files: list[str]) -> dict[str, str | None]:
    """Git HEAD and the sha1 of the sources and tests as run (the working tree may differ from HEAD)."""
    out: dict[str, str | None] = {}
    try:
        out["head"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=REPO, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["head"] = None
    for rel in (*SOURCES, "test/safety/conftest.py", *files):
        out[rel] = _sha1(rel)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=None,
                        help="N: examples of a test of weight 1, in every file (a test runs round(weight x N)); "
                             "default: per file, the smallest N giving --target examples")
    parser.add_argument("--target", type=int, default=DEFAULT_TARGET,
                        help=f"examples per test file when --examples is not given (default {DEFAULT_TARGET:,})")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help=f"at most this many examples per unit weight in one pytest process (default {DEFAULT_BATCH:,})")
    parser.add_argument("--seed", type=int, default=None,
                        help="hypothesis seed of the first batch (batch i: seed + i); default: random, recorded")
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression selecting tests")
    parser.add_argument("--keep-going", action="store_true", help="run the remaining batches after a failure")
    parser.add_argument("--plan", action="store_true", help="print the examples and batches planned, run nothing")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = parser.parse_args()
    if (a.examples is not None and a.examples < 1) or a.batch < 1 or a.target < 1:
        parser.error("--examples, --target and --batch must be >= 1")
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(2**32)
    files = [str(f.relative_to(REPO)) for f in sorted(TEST_DIR.glob(PATTERN))]
    if not files:
        print(f"no {PATTERN} in {TEST_DIR.relative_to(REPO)}", file=sys.stderr)
        return 5

    plan: dict[str, dict[str, Any]] = {}
    for f in files:
        weights, code, output = collect_weights(f, a.keyword)
        if code == 5 or (code == 0 and not weights):
            continue  # nothing selected here (-k), or no hypothesis test in the file
        if code != 0:
            print(f"collecting {f} failed (pytest exit code {code}):\n{output}", file=sys.stderr)
            return code
        n = a.examples if a.examples is not None else examples_for_target(weights, a.target, a.batch)
        plan[f] = {"examples_per_weight": n, "weights": weights, "batches": batch_sizes(n, a.batch),
                   "planned_examples": planned_examples(weights, n, a.batch)}
    if not plan:
        print("no property test selected", file=sys.stderr)
        return 5
    batches: list[Batch] = []
    for f, p in plan.items():
        for n in p["batches"]:
            batches.append(Batch(len(batches), f, n, seed + len(batches)))
    print(f"seed {seed}, load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {len(batches)} batch(es):")
    for f, p in plan.items():
        print(f"  {f}: N = {p['examples_per_weight']:,} per unit weight (weights "
              f"{', '.join(f'{w:g}' for w in p['weights'].values())}) -> {p['planned_examples']:,} examples "
              f"in {len(p['batches'])} batch(es)", flush=True)
    if a.plan:
        return 0

    load_before = os.getloadavg()
    started, started_utc = time.perf_counter(), datetime.now(timezone.utc)
    interrupted = False
    for b in batches:
        print(f"\n=== batch {b.index + 1}/{len(batches)}: {b.file}, {b.examples_per_weight:,} examples per unit "
              f"weight, seed {b.seed}", flush=True)
        try:
            run_batch(b, a.keyword)
        except KeyboardInterrupt:
            interrupted = True
            break
        print(f"=== batch {b.index + 1}: {sum(t.examples for t in b.tests):,} examples in {b.wall_s:.1f} s, "
              f"exit code {b.exit_code}, peak memory {b.max_rss_mb} MB", flush=True)
        interrupted = b.exit_code == 2
        if interrupted or (b.failed and not a.keep_going):
            break
    wall = time.perf_counter() - started

    ran = [b for b in batches if b.exit_code is not None]
    tests = aggregate(ran)
    total = totals(tests)
    counterexamples = total["all"]["counterexamples"]
    failed = interrupted or not tests or any(b.failed for b in ran)
    print_results(tests)

    import hypothesis

    result = {
        "benchmark": "safety_properties",
        "time_utc": started_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["bench/" + Path(sys.argv[0]).name, *sys.argv[1:]]),
        "seed": seed,
        "examples_option": a.examples,
        "target_per_file": None if a.examples is not None else a.target,
        "batch": a.batch,
        "hypothesis_profile": "bench",
        "pytest_args_of_batch_0": ["python", "-m", "pytest", *batch_pytest_args(batches[0].file, seed, a.keyword)],
        "ok": not failed,
        "counterexamples": counterexamples,
        "interrupted": interrupted,
        "plan": plan,
        "batches": [{"index": b.index, "file": b.file, "examples_per_weight": b.examples_per_weight, "seed": b.seed,
                     "exit_code": b.exit_code, "wall_s": round(b.wall_s, 2), "max_rss_mb": b.max_rss_mb,
                     "examples": sum(t.examples for t in b.tests),
                     "statistics": {t.nodeid: t.statistics for t in b.tests}} for b in ran],
        "totals": total,
        "tests": tests,
        "sources": source_state(files),
        "python": platform.python_version(),
        "hypothesis": hypothesis.__version__,
        "pytest": pytest.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "nice": os.nice(0),
        "wall_time_s": round(wall, 2),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")

    print()
    for f, t in total.items():
        print(f"{f}: {t['examples']:,} examples in {t['tests']} test(s), {t['wall_s']:.1f} s in the tests "
              f"({t['examples'] / max(t['wall_s'], 1e-9):.0f}/s), counterexamples {t['counterexamples']}, "
              f"failed {t['failed']}")
    print(f"{len(ran)} batch(es) in {wall:.1f} s; load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}; "
          f"seed {seed}; {'OK' if not failed else 'FAILED'}")
    print(f"wrote {a.out}")
    if not failed:
        return 0
    if counterexamples or any(t["outcome"] in ("failed", "error") for t in tests):
        return 1
    codes = [b.exit_code for b in ran if b.exit_code not in (0, 1)]
    return 2 if interrupted else int(codes[0]) if codes else 1


if __name__ == "__main__":
    sys.exit(main())
