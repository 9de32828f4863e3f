"""Opening the CAN bus of the actuator (python-can), for the driver and for the emulated rig alike."""

from __future__ import annotations


def open_can_bus(interface: str, channel: str, port: int = 0, receive_own_messages: bool = False):
    """A python-can bus: ``virtual`` (in-process), ``udp_multicast`` (processes), ``socketcan``."""
    import can

    kwargs: dict = {"interface": interface, "channel": channel}
    if interface == "udp_multicast":
        if port:
            kwargs["port"] = port
        kwargs["receive_own_messages"] = receive_own_messages
    elif interface == "virtual":
        kwargs["receive_own_messages"] = receive_own_messages
    try:
        return can.Bus(**kwargs)
    except (can.CanError, OSError, ValueError) as exc:
        raise OSError(f"cannot open CAN bus {interface}:{channel}"
                      f"{f' port {port}' if port else ''}: {exc}") from exc
