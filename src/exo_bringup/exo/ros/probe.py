"""An in-process rclpy node watching a graph: publish, collect, wait with timeouts (exo sim, tests, benches)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

from exo.contract import DEFAULT_NAMESPACE, Topic
from exo.ros.qos import qos_profile
from exo.ros.types import interface_class
from exo.runner import GraphRunner


class RosProbe:
    """A node in its own rclpy context (own domain), spun only while waiting.

    Args:
        domain_id: DDS domain of the graph under test.
        namespace: namespace used to resolve contract topics.
        events: spin with rclpy's EventsExecutor (about half the CPU per message: ``exo real``'s
            watcher, which runs next to the graph) instead of the SingleThreadedExecutor.
    """

    def __init__(self, domain_id: int, namespace: str = DEFAULT_NAMESPACE, name: str = "test_probe",
                 events: bool = False) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        if events:
            from rclpy.experimental import EventsExecutor

            self.executor = EventsExecutor(context=self.context)
        else:
            self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.namespace = namespace
        self.received: dict[str, list[Any]] = {}
        self.subscriptions: dict[str, Any] = {}

    def _name(self, topic: Topic | str) -> str:
        """Absolute name: contract topics and relative names resolve under the probe's namespace."""
        if isinstance(topic, Topic):
            return topic.resolved(self.namespace)
        if topic.startswith("/"):
            return topic
        return f"/{self.namespace.strip('/')}/{topic}" if self.namespace.strip("/") else f"/{topic}"

    def subscribe(self, topic: Topic | str, msg_type: str | None = None, qos: QoSProfile | None = None) -> list[Any]:
        """Collect every message on ``topic`` into a list (returned, and in ``received``)."""
        box = self.received.setdefault(self._name(topic), [])
        self.watch(topic, box.append, msg_type, qos)
        return box

    def watch(self, topic: Topic | str, callback: Callable[[Any], None], msg_type: str | None = None,
              qos: QoSProfile | None = None) -> Any:
        """Call ``callback`` with every message on ``topic``; the subscription (also in ``subscriptions``).

        Default QoS: a watcher's, which must see everything: the topic's reliability and durability, a
        queue of 1,000, no deadline.
        """
        name = self._name(topic)
        type_name = topic.msg_type if isinstance(topic, Topic) else msg_type
        if type_name is None:
            raise ValueError("msg_type is required for a plain topic name")
        if qos is None:
            qos = qos_profile(topic) if isinstance(topic, Topic) else QoSProfile(depth=1000)
            qos.depth = 1000
            qos.deadline = Duration()
        self.subscriptions[name] = self.node.create_subscription(interface_class(type_name), name, callback, qos)
        return self.subscriptions[name]

    def publisher(self, topic: Topic | str, msg_type: str | None = None, qos: QoSProfile | None = None):
        name = self._name(topic)
        type_name = topic.msg_type if isinstance(topic, Topic) else msg_type
        if qos is None:
            qos = qos_profile(topic) if isinstance(topic, Topic) else QoSProfile(depth=100)
        return self.node.create_publisher(interface_class(type_name), name, qos)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, end - time.monotonic())))

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str = "condition") -> None:
        """Spin until ``predicate()`` is true; ``TimeoutError`` naming ``what`` otherwise."""
        end = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.01)

    def wait_for_nodes(self, names: list[str], timeout_s: float = 20.0, graph: GraphRunner | None = None) -> None:
        """Wait until every node in ``names`` (relative to the namespace) is in the ROS graph.

        With the ``graph`` that started them, a node that exits while it is awaited fails the
        wait at once with its log (:class:`exo.runner.NodeDied`) instead of after ``timeout_s``,
        and a native crash before it joined the graph is restarted once
        (:meth:`exo.runner.GraphRunner.recover_startup_crashes`, which warns).
        """
        ns = "/" + self.namespace.strip("/") if self.namespace.strip("/") else "/"

        def present() -> bool:
            found = {n for n, node_ns in self.node.get_node_names_and_namespaces() if node_ns == ns}
            missing = set(names) - found
            if missing and graph is not None:
                graph.recover_startup_crashes(missing)
            return not missing

        self.wait_for(present, timeout_s, f"nodes {names} in namespace {ns}")

    def wait_for_subscribers(self, publisher, count: int = 1, timeout_s: float = 10.0) -> None:
        self.wait_for(lambda: publisher.get_subscription_count() >= count, timeout_s,
                      f"{count} subscriber(s) on {publisher.topic_name}")

    def wait_for_publishers(self, topic: Topic | str, count: int = 1, timeout_s: float = 10.0) -> None:
        """Spin until the probe's subscription to ``topic`` (made by :meth:`subscribe`) has matched ``count``
        publishers: from then on it receives what they publish."""
        sub = self.subscriptions[self._name(topic)]
        self.wait_for(lambda: sub.get_publisher_count() >= count, timeout_s,
                      f"{count} publisher(s) on {sub.topic_name}")

    def start_source(self, topics: list[Topic | str] | None = None, timeout_s: float = 60.0) -> None:
        """Start a graph launched with ``paused:=true`` once this probe can see it from its first sample.

        Waits until the probe's subscription to each of ``topics`` (default: every topic it subscribed
        to) has matched a publisher, then calls the sensor source's ``source/start`` service
        (:data:`exo.contract.SOURCE_START_SERVICE`, see :mod:`exo.ros.start_gate`).
        """
        from exo.contract import SOURCE_START_SERVICE

        names = [self._name(t) for t in topics] if topics is not None else list(self.subscriptions)
        end = time.monotonic() + timeout_s
        for name in names:
            self.wait_for_publishers(name, 1, max(0.0, end - time.monotonic()))
        response = self.call("std_srvs/srv/Trigger", SOURCE_START_SERVICE, timeout_s=max(1.0, end - time.monotonic()))
        if not response.success:
            raise RuntimeError(f"{SOURCE_START_SERVICE} refused: {response.message}")

    def call(self, srv_type: str, name: str, request: Any | None = None, timeout_s: float = 10.0) -> Any:
        """Call a service (waits for it), returning the response."""
        cls = interface_class(srv_type)
        client = self.node.create_client(cls, self._name(name))
        try:
            self.wait_for(client.service_is_ready, timeout_s, f"service {client.srv_name}")
            future = client.call_async(request if request is not None else cls.Request())
            self.wait_for(future.done, timeout_s, f"response of {client.srv_name}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self) -> RosProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
