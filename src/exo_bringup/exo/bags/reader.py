"""Read exo bags: sessions, rosbag2 bag folders or bare ``.mcap`` files, complete or damaged.

The reader needs nothing but the files: it walks the MCAP records with the
``mcap`` package's stream reader and decodes CDR with a rosbags typestore built
from the **definitions embedded in the bag** (its ``ros2msg`` schemas), so a bag
written by another version of exo (or by ``ros2 bag record``) decodes with the
definitions it was recorded with.

Damage is reported, never fatal: a file cut short (a recorder killed with
SIGKILL, a disk that filled up) yields every chunk before the cut; a chunk whose
CRC or compression is broken is skipped and the chunks after it are read; a
message that does not decode is counted and skipped. Every problem is listed in
:attr:`Session.problems` with the file and byte offset.

Accepted paths (:func:`open_session`):

- a session folder written by :class:`exo.bags.writer.BagWriter` (``session.json``
  and bag subfolders, read in split order);
- a rosbag2 bag folder (``metadata.yaml`` and/or ``*.mcap``);
- a single ``.mcap`` file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcap.reader import SeekingReader
from mcap.records import Channel, Chunk, Footer, Message, Metadata, Schema
from mcap.stream_reader import StreamReader, breakup_chunk
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from exo.bags.writer import CUSTOM_PREFIX, SESSION_FILE, SessionMetadata


class BagError(ValueError):
    """A path is not a bag (nothing readable at all)."""


@dataclass(frozen=True)
class BagMessage:
    """One decoded message.

    Attributes:
        topic: absolute topic name.
        msgtype: ``pkg/msg/Type``.
        log_time_ns: time the recorder received it, ns since the epoch (wall clock).
        msg: the decoded message (rosbags dataclass; field names as in the ``.msg``).
        raw: the CDR bytes as recorded (only with ``keep_raw=True``).
    """

    topic: str
    msgtype: str
    log_time_ns: int
    msg: Any
    raw: bytes = b""


@dataclass
class FileSummary:
    """What was read from one ``.mcap`` file."""

    path: Path
    messages: int = 0
    complete: bool = False
    skipped_chunks: int = 0
    undecodable: int = 0


def _natural_key(path: Path) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name)]


def mcap_files(path: Path) -> list[Path]:
    """The ``.mcap`` files of a session / bag folder / file, in recording order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BagError(f"no such bag: {path}")
    files = sorted(path.glob("*.mcap"), key=_natural_key)
    for sub in sorted((p for p in path.iterdir() if p.is_dir()), key=_natural_key):
        files += sorted(sub.glob("*.mcap"), key=_natural_key)
    if not files:
        raise BagError(f"{path} holds no .mcap file (not a bag, a bag folder or an exo session)")
    return files


def _bag_infos(path: Path) -> Iterator[dict]:
    """The ``rosbag2_bagfile_information`` of every readable metadata.yaml under ``path``, in bag order
    (a broken or missing one is skipped: a recorder killed before it closed the bag writes none)."""
    import yaml

    if not path.is_dir():
        return
    for meta in sorted(path.rglob("metadata.yaml"), key=_natural_key):
        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
        except Exception:  # noqa: BLE001 - a broken metadata.yaml is a problem, not a crash
            continue
        if isinstance(info, dict):
            yield info


def _custom_data(path: Path) -> dict[str, str]:
    """The ``exo.*`` custom_data of every metadata.yaml under ``path`` (first wins)."""
    out: dict[str, str] = {}
    for info in _bag_infos(path):
        for key, value in (info.get("custom_data") or {}).items():
            if key.startswith(CUSTOM_PREFIX) and key[len(CUSTOM_PREFIX):] not in out:
                out[key[len(CUSTOM_PREFIX):]] = str(value)
    return out


def listed_message_counts(path: Path) -> dict[str, int]:
    """Topic -> message count that the ``metadata.yaml`` files under ``path`` list (summed over the
    session's bags); empty for a bare ``.mcap`` file or where a bag has no readable metadata.yaml."""
    counts: dict[str, int] = {}
    for info in _bag_infos(path):
        try:
            for item in info.get("topics_with_message_count") or []:
                topic = str(item["topic_metadata"]["name"])
                counts[topic] = counts.get(topic, 0) + int(item["message_count"])
        except (KeyError, TypeError, ValueError):  # malformed counts only mean they are unknown
            continue
    return counts


class Session:
    """The bags of one recording session (see :func:`open_session`).

    Attributes:
        path: what was opened.
        files: its ``.mcap`` files in recording order.
        metadata: session metadata (``session.json``, else the bags' custom_data).
        problems: human-readable descriptions of everything that could not be read.
        summaries: per-file counts, filled as the files are read.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.files = mcap_files(self.path)
        self.problems: list[str] = []
        self.summaries: list[FileSummary] = []
        data: dict[str, str] = {}
        session_file = self.path / SESSION_FILE if self.path.is_dir() else None
        if session_file is not None and session_file.is_file():
            try:
                data = {k: str(v) for k, v in json.loads(session_file.read_text()).items()
                        if k not in ("format", "created_unix_s")}
            except (OSError, ValueError) as exc:
                self.problems.append(f"{session_file}: unreadable session metadata ({exc})")
        if not data:
            data = _custom_data(self.path)
        self.metadata = SessionMetadata.from_dict(data)
        self.typestore: Typestore = get_typestore(Stores.EMPTY)
        self._registered: set[str] = set()
        self._failed_types: set[str] = set()

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    # --- types -----------------------------------------------------------
    def _register(self, schema: Schema) -> None:
        if schema.name in self._registered or schema.name in self._failed_types:
            return
        if schema.encoding != "ros2msg":
            self.problems.append(f"schema {schema.name}: encoding {schema.encoding!r} is not ros2msg; not decoded")
            self._failed_types.add(schema.name)
            return
        try:
            types = get_types_from_msg(schema.data.decode(), schema.name)
            self.typestore.register(types)
            self._registered.add(schema.name)
        except Exception as exc:  # noqa: BLE001 - the embedded text is data from a file
            self.problems.append(f"schema {schema.name}: embedded definition does not parse ({exc})")
            self._failed_types.add(schema.name)

    # --- reading -----------------------------------------------------------
    def messages(self, topics: set[str] | None = None, keep_raw: bool = False) -> Iterator[BagMessage]:
        """Every readable message (optionally only of ``topics``), file by file in recording order."""
        self.summaries = []
        for path in self.files:
            yield from self._read_file(path, topics, keep_raw)

    def _read_file(self, path: Path, topics: set[str] | None, keep_raw: bool) -> Iterator[BagMessage]:
        summary = FileSummary(path)
        self.summaries.append(summary)
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}
        size = path.stat().st_size
        with open(path, "rb") as f:
            self._summary_records(f, schemas, channels)
            reader = StreamReader(f, emit_chunks=True, record_size_limit=max(size, 1))
            records = reader.records
            while True:
                offset = f.tell()
                try:
                    record = next(records)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - truncated or corrupt framing: stop this file
                    self.problems.append(
                        f"{path}: unreadable from byte ~{offset} of {size} ({type(exc).__name__}: {exc}); "
                        f"the file is truncated or corrupt, {summary.messages} message(s) before it were read"
                    )
                    break
                if isinstance(record, Chunk):
                    try:
                        inner = breakup_chunk(record, validate_crc=True)
                    except Exception as exc:  # noqa: BLE001 - bad CRC / compression: skip the chunk
                        summary.skipped_chunks += 1
                        self.problems.append(
                            f"{path}: chunk near byte {offset} skipped ({type(exc).__name__}: {exc}); "
                            f"messages {record.message_start_time}..{record.message_end_time} ns lost"
                        )
                        continue
                else:
                    inner = [record]
                for rec in inner:
                    if isinstance(rec, Schema):  # the summary's copy (if any) wins over a damaged chunk's
                        schemas.setdefault(rec.id, rec)
                    elif isinstance(rec, Channel):
                        channels.setdefault(rec.id, rec)
                    elif isinstance(rec, Message):
                        out = self._decode(path, summary, rec, schemas, channels, topics, keep_raw)
                        if out is not None:
                            yield out
                    elif isinstance(rec, Metadata):
                        pass
                    elif isinstance(rec, Footer):
                        summary.complete = True

    @staticmethod
    def _summary_records(f, schemas: dict[int, Schema], channels: dict[int, Channel]) -> None:
        """Schemas and channels from the summary section of a complete file (so that the messages of
        a chunk after a damaged first chunk, which held the definitions, still decode)."""
        try:
            summary = SeekingReader(f).get_summary()
        except Exception:  # noqa: BLE001 - a truncated file has no summary: the stream has the records
            summary = None
        if summary is not None:
            schemas.update(summary.schemas)
            channels.update(summary.channels)
        f.seek(0)

    def _decode(self, path: Path, summary: FileSummary, rec: Message, schemas: dict[int, Schema],
                channels: dict[int, Channel], topics: set[str] | None, keep_raw: bool) -> BagMessage | None:
        channel = channels.get(rec.channel_id)
        if channel is None:
            summary.undecodable += 1
            if summary.undecodable == 1:
                self.problems.append(f"{path}: message on unknown channel {rec.channel_id} skipped")
            return None
        if topics is not None and channel.topic not in topics:
            return None
        schema = schemas.get(channel.schema_id)
        if schema is None:
            summary.undecodable += 1
            return None
        self._register(schema)
        try:
            msg = self.typestore.deserialize_cdr(rec.data, schema.name)
        except Exception as exc:  # noqa: BLE001 - bad bytes in a message: count and go on
            summary.undecodable += 1
            if summary.undecodable <= 3:
                self.problems.append(f"{path}: a {schema.name} message on {channel.topic} does not decode ({exc})")
            return None
        summary.messages += 1
        return BagMessage(channel.topic, schema.name, rec.log_time, msg, bytes(rec.data) if keep_raw else b"")

    def read_all(self, topics: set[str] | None = None) -> dict[str, list[BagMessage]]:
        """Every readable message grouped by topic (each list in log-time order)."""
        out: dict[str, list[BagMessage]] = {}
        for m in self.messages(topics):
            out.setdefault(m.topic, []).append(m)
        for msgs in out.values():
            msgs.sort(key=lambda m: m.log_time_ns)
        return out

    def truncated_files(self) -> list[Path]:
        """Files read so far that lack their footer (cut short)."""
        return [s.path for s in self.summaries if not s.complete]


def open_session(path: Path | str) -> Session:
    """Open a session folder, bag folder or ``.mcap`` file (:class:`BagError` if there is none)."""
    return Session(path)


def stamp_s(msg: Any) -> float:
    """``header.stamp`` of a decoded message, s."""
    stamp = msg.header.stamp
    return stamp.sec + stamp.nanosec * 1e-9
