"""A minimal Foxglove WebSocket client (``websockets``) for the live view's tests and benchmark.

It speaks the protocol's client side as the Foxglove app does: reads ``serverInfo`` and the channel
advertisements, subscribes, and collects the binary message-data frames (opcode 1: subscription id
u32, log time u64 ns, payload) in a background thread. Never used by the nodes.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.sync.client import ClientConnection, connect

#: Subprotocol of foxglove-sdk's server.
SUBPROTOCOL = "foxglove.sdk.v1"


@dataclass
class Frame:
    """One message from the server: channel topic, log time (ns), payload bytes, wall time of receipt (s)."""

    topic: str
    log_time_ns: int
    payload: bytes
    received_s: float


@dataclass
class FoxgloveClient:
    """Connects to ``url`` and collects messages of the channels it subscribes to."""

    url: str
    timeout_s: float = 10.0
    server_info: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # topic -> advertisement
    statuses: list[dict[str, Any]] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ws: ClientConnection = connect(self.url, subprotocols=[SUBPROTOCOL], open_timeout=self.timeout_s,
                                            max_size=None).__enter__()
        self._subs: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.server_info = json.loads(self.ws.recv(timeout=self.timeout_s))
        self._thread = threading.Thread(target=self._read, name="foxglove-client", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - the connection closed
                return
            if isinstance(message, bytes):
                if message[0] == 1:
                    sub, log_time = struct.unpack_from("<IQ", message, 1)
                    with self._lock:
                        self.frames.append(Frame(self._subs.get(sub, "?"), log_time, message[13:], time.time()))
                continue
            op = json.loads(message)
            with self._lock:
                if op.get("op") == "advertise":
                    for ch in op["channels"]:
                        self.channels[ch["topic"]] = ch
                elif op.get("op") == "status":
                    self.statuses.append(op)

    def wait_for_channels(self, topics: list[str], timeout_s: float = 20.0) -> None:
        end = time.monotonic() + timeout_s
        while not set(topics) <= set(self.channels):
            if time.monotonic() > end:
                raise TimeoutError(f"channels {sorted(set(topics) - set(self.channels))} not advertised in "
                                   f"{timeout_s} s (have {sorted(self.channels)})")
            time.sleep(0.05)

    def subscribe(self, topics: list[str]) -> None:
        """Subscribe to the channels of ``topics`` (advertised already)."""
        subs = []
        with self._lock:
            for topic in topics:
                sub_id = len(self._subs) + 1
                self._subs[sub_id] = topic
                subs.append({"id": sub_id, "channelId": self.channels[topic]["id"]})
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))

    def send(self, op: dict[str, Any] | bytes) -> None:
        """Send a raw client operation (JSON) or binary frame: what a client that tries to write would send."""
        self.ws.send(op if isinstance(op, bytes) else json.dumps(op))

    def of(self, topic: str) -> list[Frame]:
        with self._lock:
            return [f for f in self.frames if f.topic == topic]

    def close(self) -> None:
        self._stop.set()
        self.ws.close()
        self._thread.join(timeout=2.0)
