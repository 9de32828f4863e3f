"""Emulated devices for the real graph without hardware (``exo real --emulate``, the integration tests).

:mod:`exo.emulation.devices`: a CubeMars AK motor on a python-can bus, WitMotion IMUs, an OpenBCI
Cyton and a foot-pressure insole on pseudo-terminals, with the reduced twin behind them in real
time, fault injection, and :class:`~exo.emulation.devices.EmulatorProcess` to run them as a child
process. Production code paths (the drivers, the nodes) never import this package.
"""
