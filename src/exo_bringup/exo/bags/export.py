"""Export a bag's topics as tables (CSV or Parquet) for analysis outside exo.

One file per topic, named after the topic (``exo__joint_states.csv``); one row
per message with ``log_time_ns`` (recorder receive time, ns since the epoch),
``stamp_s`` (``header.stamp``, s, when the type has a header) and every field
flattened with dotted names (``wrench.torque.y``). Numeric arrays of up to
:data:`MAX_EXPANDED` elements become one column per element (``position.0``);
longer arrays (EMG samples) and string arrays are stored as JSON text.

Format ``mcap`` writes a complete, re-indexed copy of everything readable as a new exo
session (summary, footer, ``metadata.yaml``): the repair of a bag whose recorder was
killed, for tools that need the summary (``ros2 bag info``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from exo.bags.reader import Session

FORMATS = ("csv", "parquet", "mcap")
#: Numeric arrays up to this length are expanded into one column per element.
MAX_EXPANDED = 16


def flatten(msg: Any, prefix: str = "") -> dict[str, Any]:
    """Flat ``{dotted.name: scalar}`` of a decoded rosbags message."""
    out: dict[str, Any] = {}
    fields = getattr(msg, "__dataclass_fields__", None)
    if fields is None:
        out[prefix.rstrip(".")] = msg
        return out
    for name in fields:
        if name == "__msgtype__":
            continue
        value = getattr(msg, name)
        key = f"{prefix}{name}"
        if hasattr(value, "__dataclass_fields__"):
            out.update(flatten(value, key + "."))
        elif isinstance(value, np.ndarray | list | tuple):
            seq = list(value.tolist() if isinstance(value, np.ndarray) else value)
            if seq and hasattr(seq[0], "__dataclass_fields__"):
                out[key] = json.dumps([flatten(v) for v in seq], default=float)
            elif len(seq) <= MAX_EXPANDED and all(isinstance(v, int | float) for v in seq):
                for i, v in enumerate(seq):
                    out[f"{key}.{i}"] = v
                if not seq:
                    out.setdefault(key, "[]")
            else:
                out[key] = json.dumps(seq, default=float)
        else:
            out[key] = value
    return out


def topic_file_stem(topic: str) -> str:
    """File name of a topic's table: ``/exo/imu/thigh`` -> ``exo__imu__thigh``."""
    return topic.strip("/").replace("/", "__") or "root"


def topic_tables(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Rows per topic of every readable message."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for m in session.messages():
        row: dict[str, Any] = {"log_time_ns": m.log_time_ns}
        header = getattr(m.msg, "header", None)
        if header is not None:
            row["stamp_s"] = header.stamp.sec + header.stamp.nanosec * 1e-9
        row.update(flatten(m.msg))
        tables.setdefault(m.topic, []).append(row)
    return tables


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        for k in r:
            cols.setdefault(k, None)
    return list(cols)


def export_session(session: Session, out_dir: Path | str, fmt: str = "csv") -> list[Path]:
    """Write one table per topic into ``out_dir``; returns the files written.

    Raises:
        ValueError: unknown format.
        ImportError: Parquet without pyarrow installed.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    if fmt == "mcap":
        return [rewrite_session(session, out)]
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for topic, rows in sorted(topic_tables(session).items()):
        cols = _columns(rows)
        path = out / f"{topic_file_stem(topic)}.{fmt}"
        if fmt == "csv":
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=cols, restval="")
                writer.writeheader()
                writer.writerows(rows)
        else:
            _write_parquet(path, rows, cols, topic)
        written.append(path)
    return written


def _write_parquet(path: Path, rows: list[dict[str, Any]], cols: list[str], topic: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for c in cols:
        values = [r.get(c) for r in rows]
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int} and kinds:
            arrays[c] = pa.array(values, type=pa.int64())
        elif kinds <= {int, float} and kinds:
            arrays[c] = pa.array([math.nan if v is None else float(v) for v in values], type=pa.float64())
        elif kinds <= {bool} and kinds:
            arrays[c] = pa.array(values, type=pa.bool_())
        else:
            arrays[c] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    table = pa.table(arrays)
    table = table.replace_schema_metadata({"topic": topic})
    pq.write_table(table, path)


def rewrite_session(session: Session, out_dir: Path | str) -> Path:
    """Write every readable message of ``session`` into a new, complete session at ``out_dir``.

    Contract topics keep the contract's QoS; other topics are declared reliable, keep last 1.
    Returns the new session folder.
    """
    from dataclasses import replace

    from exo import contract
    from exo.bags.typestore import typestore_with
    from exo.bags.writer import BagWriter

    meta = replace(session.metadata, extra={**session.metadata.extra, "rewritten_from": str(session.path)})
    # a first pass over the bag (bounded memory) makes the session know every definition the bag embeds,
    # which the copy must keep
    for _ in session.messages():
        pass
    with BagWriter(out_dir, meta, namespace=meta.namespace or contract.DEFAULT_NAMESPACE, flush_period_s=0.0,
                   typestore=typestore_with(session.typestore)) as w:
        for m in session.messages(keep_raw=True):
            w.add_topic(m.topic, m.msgtype, contract.LATEST_RELIABLE)  # no-op for the contract's topics
            w.write(m.topic, m.msgtype, m.log_time_ns, m.raw)
    return Path(out_dir)
