"""Throughput of the bag tools on the sample bags: read, read+decode, read+decode+analyse, write.

Phases, each repeated ``--repeats`` times (best run kept; the machine is shared):

- ``read``: walk the MCAP records (mcap stream reader, chunks decompressed), no decoding;
- ``decode``: the same plus CDR decoding of every message with the bag's embedded definitions
  (:meth:`exo.bags.reader.Session.messages`);
- ``analyse``: :func:`exo.bags.analysis.analyze_session` (read, decode, trials, metrics, safety events,
  latency, topic statistics), no figures;
- ``report``: ``analyse`` of every sample bag plus :func:`exo.bags.report.write_report` (PNG + HTML);
- ``write``: :class:`exo.bags.writer.BagWriter` re-writing the decoded messages' CDR bytes (flush every 0.5 s).

Rates are messages per second (messages of the bag / wall seconds). Prints a table and writes
JSON (default ``bench/results/bags.json``).

Usage: ``python bench/bench_bags.py [--repeats 3] [--out path] [BAG ...]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from exo.bags.analysis import analyze_session
from exo.bags.reader import open_session
from exo.bags.report import write_report
from exo.bags.writer import BagWriter

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "bags.json"
DEFAULT_BAGS = [ROOT / "bags" / "sim_level0_pid", ROOT / "bags" / "sim_level3_pid"]


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _read_only(path: Path) -> int:
    from mcap.stream_reader import StreamReader

    n = 0
    for mcap in sorted(path.rglob("*.mcap")):
        with open(mcap, "rb") as f:
            for record in StreamReader(f).records:
                n += type(record).__name__ == "Message"
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bags", nargs="*", type=Path, default=DEFAULT_BAGS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    results = {}
    total = 0
    for bag in args.bags:
        n = sum(1 for _ in open_session(bag).messages())
        total += n
        raw = [(m.topic, m.msgtype, m.log_time_ns, m.raw) for m in open_session(bag).messages(keep_raw=True)]

        def write(raw=raw) -> None:
            with tempfile.TemporaryDirectory() as tmp, BagWriter(Path(tmp) / "w") as w:
                for topic, msgtype, t, data in raw:
                    w.write(topic, msgtype, t, data)

        times = {
            "read": _best(lambda bag=bag: _read_only(bag), args.repeats),
            "decode": _best(lambda bag=bag: sum(1 for _ in open_session(bag).messages()), args.repeats),
            "analyse": _best(lambda bag=bag: analyze_session(open_session(bag)), args.repeats),
            "write": _best(write, args.repeats),
        }
        results[bag.name] = {"messages": n, "bytes": sum(p.stat().st_size for p in bag.rglob("*.mcap")),
                             **{f"{k}_s": v for k, v in times.items()},
                             **{f"{k}_msg_per_s": n / v for k, v in times.items()}}

    def report() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            write_report([analyze_session(open_session(b)) for b in args.bags], tmp)

    report_s = _best(report, 1)
    results["all"] = {"messages": total, "report_s": report_s, "report_msg_per_s": total / report_s}

    print(f"{'bag':<18} {'messages':>9} {'read':>10} {'decode':>10} {'analyse':>10} {'write':>10}  (msg/s)")
    for name, r in results.items():
        if name == "all":
            continue
        print(f"{name:<18} {r['messages']:>9} {r['read_msg_per_s']:>10.0f} {r['decode_msg_per_s']:>10.0f} "
              f"{r['analyse_msg_per_s']:>10.0f} {r['write_msg_per_s']:>10.0f}")
    print(f"analyse + report (figures, HTML) of all bags: {total} messages in {report_s:.2f} s "
          f"({results['all']['report_msg_per_s']:.0f} msg/s)")
    doc = {"benchmark": "bags", "python": platform.python_version(), "platform": platform.platform(),
           "argv": sys.argv[1:], "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
