"""Write rosbag2 MCAP bags of the exo graph with rosbags (no rosbag2 needed).

A *session* is a folder holding one or more rosbag2 bags (``<session>_0``,
``<session>_1``, ...: a new one starts when the current one passes the split
size or duration) and a ``session.json`` with the session metadata, written
before the first message, so it survives a killed recorder. Every bag is a
complete rosbag2 bag of its own (``metadata.yaml`` + one ``.mcap``), readable by
``ros2 bag``, Foxglove, PlotJuggler and the ``mcap`` tools; the message
definitions of every topic are embedded as ``ros2msg`` schemas, the QoS each
topic was offered with is in the channel metadata, and the session metadata is
in ``metadata.yaml``'s ``custom_data`` (keys ``exo.*``).

Bounded loss on SIGKILL: rosbags buffers messages in an MCAP chunk in memory
and writes the chunk when it reaches 1 MiB. :class:`BagWriter` also closes the
chunk and flushes the file every ``flush_period_s`` of wall time, so a recorder
killed with SIGKILL loses at most the last ``flush_period_s`` of messages; the
bag then lacks its summary, footer and ``metadata.yaml``, and
:mod:`exo.bags.reader` (or any MCAP stream reader) reads every chunk that made
it to disk.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.rosbag2.errors import WriterError
from rosbags.typesys.store import Typestore

from exo import contract
from exo.bags.typestore import exo_typestore

SESSION_FILE = "session.json"
#: Prefix of the session metadata keys in ``metadata.yaml`` custom_data.
CUSTOM_PREFIX = "exo."


@dataclass
class SessionMetadata:
    """What a bag must say about the session it records (all strings; empty = unknown).

    Attributes:
        user_id: pseudonymous id of the person wearing the exoskeleton.
        mode: "sim", "real" or "replay".
        controller: controller that produced torque_request ("pid", "sac", "zero").
        policy_version: exported policy (path or card id) for learned controllers.
        twin: digital twin ("reduced"/"full") in sim; empty on hardware.
        level: Modified Ashworth level of the simulated subject (sim only).
        subject_seed: seed of the simulated subject (sim only).
        device: hardware device id on the real robot.
        commit: git commit of the exo code that ran, "+dirty" if modified.
        namespace: namespace of the recorded graph.
        source_bag: the bag a replay session re-ran.
    """

    user_id: str = ""
    mode: str = ""
    controller: str = ""
    policy_version: str = ""
    twin: str = ""
    level: str = ""
    subject_seed: str = ""
    device: str = ""
    commit: str = ""
    namespace: str = contract.DEFAULT_NAMESPACE
    source_bag: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, str]:
        out = {k: str(v) for k, v in asdict(self).items() if k != "extra"}
        out.update({k: str(v) for k, v in self.extra.items()})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> SessionMetadata:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(**{k: str(v) for k, v in data.items() if k in known},
                   extra={k: str(v) for k, v in data.items() if k not in known})


def current_commit() -> str:
    """The exo checkout's commit ("<sha>" or "<sha>+dirty"), or "" outside a git checkout."""
    from exo.records import git_info

    info = git_info()
    if not info.get("commit"):
        return ""
    return info["commit"] + ("+dirty" if info.get("dirty") else "")


def _qos_time(seconds: float) -> QosTime:
    if seconds <= 0:
        return QosTime(0, 0)
    ns = int(round(seconds * 1e9))
    return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)


def rosbags_qos(spec: contract.QosSpec) -> Qos:
    """The rosbag2 ``offered_qos_profiles`` entry of a contract QoS spec.

    ``ros2 bag play`` offers this profile again, so best-effort sensor streams are
    replayed best effort and the latched safety status transient-local.
    """
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=spec.depth,
        reliability=(QosReliability.RELIABLE if spec.reliability is contract.Reliability.RELIABLE
                     else QosReliability.BEST_EFFORT),
        durability=(QosDurability.TRANSIENT_LOCAL if spec.durability is contract.Durability.TRANSIENT_LOCAL
                    else QosDurability.VOLATILE),
        deadline=_qos_time(spec.deadline_s),
        lifespan=QosTime(0, 0),
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=QosTime(0, 0),
        avoid_ros_namespace_conventions=False,
    )


def contract_topics(namespace: str = contract.DEFAULT_NAMESPACE) -> dict[str, contract.Topic]:
    """Resolved topic name -> contract topic, for every topic of the contract."""
    return {t.resolved(namespace): t for t in contract.TOPICS.values()}


class BagWriter:
    """Write the messages of a session into split rosbag2 MCAP bags.

    Args:
        path: session folder to create (must not exist).
        metadata: session metadata (``session.json`` and each bag's custom_data).
        split_size_bytes: start a new bag when the current one holds this many bytes of messages (0 = never).
        split_duration_s: start a new bag after this many seconds of message time (0 = never), s.
        flush_period_s: close the pending MCAP chunk and flush the file at least this often (wall time), s;
            0 = only when rosbags' 1 MiB chunk is full.
        namespace: namespace the contract topics are resolved in.
        compress: zstd-compress each MCAP chunk (``mcap``'s chunk compression, which every MCAP reader
            decodes; about 4x smaller bags of this graph).

    Messages are CDR bytes (an rclpy raw subscription gives them as they came off the wire).
    """

    def __init__(self, path: Path | str, metadata: SessionMetadata | None = None, *, split_size_bytes: int = 0,
                 split_duration_s: float = 0.0, flush_period_s: float = 0.5,
                 namespace: str = contract.DEFAULT_NAMESPACE, compress: bool = True,
                 typestore: Typestore | None = None) -> None:
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise FileExistsError(f"bag folder {self.path} exists and is not empty; choose a new one")
        if split_size_bytes < 0 or split_duration_s < 0 or flush_period_s < 0:
            raise ValueError("split size, split duration and flush period must be >= 0")
        self.metadata = metadata or SessionMetadata(namespace=namespace)
        self.split_size_bytes = split_size_bytes
        self.split_duration_s = split_duration_s
        self.flush_period_s = flush_period_s
        self.compress = compress
        # the definitions embedded per type: the build's own, or (rewriting a bag) the bag's (typestore_with)
        self.typestore = typestore if typestore is not None else exo_typestore()
        self.topics = contract_topics(namespace)
        self.bags: list[Path] = []
        self.message_count = 0
        self._writer: Writer | None = None
        self._connections: dict[tuple[str, str], object] = {}
        self._declared: dict[tuple[str, str], Qos] = {}
        self._bytes = 0
        self._first_ns: int | None = None
        self._last_flush = time.monotonic()
        self.path.mkdir(parents=True, exist_ok=True)
        session = {"format": "exo-session/1", "created_unix_s": time.time(), **self.metadata.to_dict()}
        (self.path / SESSION_FILE).write_text(json.dumps(session, indent=2) + "\n")
        for name, topic in self.topics.items():  # every contract topic is declared in every bag
            self._declared[(name, topic.msg_type)] = rosbags_qos(topic.qos)
        self._open_next()

    # --- bags ------------------------------------------------------------
    def _open_next(self) -> None:
        bag = self.path / f"{self.path.name}_{len(self.bags)}"
        writer = Writer(bag, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        for key, value in self.metadata.to_dict().items():
            writer.set_custom_data(CUSTOM_PREFIX + key, value)
        writer.set_custom_data(CUSTOM_PREFIX + "split_index", str(len(self.bags)))
        if self.compress:
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        writer.open()
        self._writer = writer
        self._connections = {}
        for (name, msg_type), qos in self._declared.items():
            self._connections[(name, msg_type)] = writer.add_connection(
                name, msg_type, typestore=self.typestore, offered_qos_profiles=[qos])
        self.bags.append(bag)
        self._bytes = 0
        self._first_ns = None
        self._flush()

    def add_topic(self, name: str, msg_type: str, qos: contract.QosSpec) -> None:
        """Declare a topic outside the contract (absolute name); contract topics are declared already."""
        key = (name, msg_type)
        if key in self._declared:
            return
        self._declared[key] = rosbags_qos(qos)
        assert self._writer is not None
        self._connections[key] = self._writer.add_connection(
            name, msg_type, typestore=self.typestore, offered_qos_profiles=[self._declared[key]])

    def write(self, topic: str, msg_type: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        """Append one CDR-serialised message received at ``timestamp_ns`` (ns since the epoch).

        Raises:
            KeyError: ``topic`` was never declared (not a contract topic and no :meth:`add_topic`).
        """
        if self._writer is None:
            raise WriterError(f"bag session {self.path} is closed")
        key = (topic, msg_type)
        if key not in self._connections:
            raise KeyError(f"topic {topic} ({msg_type}) is not declared in bag session {self.path}")
        if self._first_ns is not None and self._split_due(timestamp_ns):
            self._writer.close()
            self._open_next()
        if self._first_ns is None:
            self._first_ns = timestamp_ns
        self._writer.write(self._connections[key], timestamp_ns, data)
        self._after_write(len(data))

    def _split_due(self, timestamp_ns: int) -> bool:
        if self.split_size_bytes and self._bytes >= self.split_size_bytes:
            return True
        return bool(self.split_duration_s and self._first_ns is not None
                    and (timestamp_ns - self._first_ns) * 1e-9 >= self.split_duration_s)

    def _after_write(self, size: int) -> None:
        self._bytes += size
        self.message_count += 1
        if self.flush_period_s and time.monotonic() - self._last_flush >= self.flush_period_s:
            self._flush()

    def _flush(self) -> None:
        """Write the pending chunk to disk (rosbags' MCAP storage keeps it in memory until 1 MiB)."""
        self._last_flush = time.monotonic()
        storage = getattr(self._writer, "storage", None)
        if storage is None:
            return
        # rosbags' McapWriter: close_chunk() writes the chunk and its message indexes to the file.
        if storage.chunk.bio.tell():
            storage.close_chunk()
        storage.bio.flush()

    def flush(self) -> None:
        """Write everything buffered so far to disk (the pending chunk, then an OS flush)."""
        if self._writer is not None:
            self._flush()

    def flush_if_due(self) -> None:
        """:meth:`flush` if ``flush_period_s`` passed since the last one (a recorder's timer calls it,
        so that messages reach the disk when the stream pauses too)."""
        if self.flush_period_s and time.monotonic() - self._last_flush >= self.flush_period_s:
            self.flush()

    def close(self) -> None:
        """Finish the current bag: MCAP summary and footer, ``metadata.yaml``."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
