"""Seeing the graph while it runs: the Foxglove live view and the therapist's console.

Pure cores (no rclpy, no server imports): :mod:`exo.live.forward` decides what the ``live_view`` node
forwards to Foxglove and how often (rate limits on the messages' own stamps, the EMG envelope);
:mod:`exo.live.layout` builds the committed Foxglove layout from the contract; :mod:`exo.live.console_state`
keeps what the console's page shows (ring buffers, safety state, session timer, progress);
:mod:`exo.live.net` checks a host and port before anything binds them.
"""
