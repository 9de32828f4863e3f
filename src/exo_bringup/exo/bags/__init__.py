"""Recording, reading, replaying, analysing and exporting rosbag2 MCAP bags (pure Python, no rclpy).

- :mod:`exo.bags.typestore`: the rosbags typestore with exo_msgs registered from its ``.msg`` files.
- :mod:`exo.bags.writer`: :class:`~exo.bags.writer.BagWriter` (contract topics, QoS, metadata, splits,
  bounded loss on SIGKILL).
- :mod:`exo.bags.reader`: read sessions, bags and bare ``.mcap`` files, complete or truncated.
- :mod:`exo.bags.analysis`: per-trial metrics (:mod:`exo.metrics`), safety events, latency, sensor rates.
- :mod:`exo.bags.report`: ``metrics.json``, CSV, PNG figures and a self-contained ``report.html``.
- :mod:`exo.bags.export`: CSV / Parquet tables per topic.
- :mod:`exo.bags.replay`: the replay schedule and the torque_command comparison.
"""
