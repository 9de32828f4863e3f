"""Host and port checks shared by the live view, the console and their commands (clear errors, no binding)."""

from __future__ import annotations

import ipaddress
import socket

#: Where the servers bind unless told otherwise: this machine only.
LOCALHOST = "127.0.0.1"


class AddressError(ValueError):
    """A host or port that cannot be used; the message names it and says why."""


def check_host(host: str) -> str:
    """``host`` if it is an IP address or ``localhost``; :class:`AddressError` otherwise.

    Names other than ``localhost`` are refused: a server bound to a name that resolves differently
    tomorrow is exposed somewhere nobody checked.
    """
    if host == "localhost":
        return host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise AddressError(f"host {host!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, 192.168.1.20) "
                           "or 'localhost'") from None
    return host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP address or ``localhost``) only accepts connections from this machine."""
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def check_port(port: int) -> int:
    """``port`` if it is a TCP port number (1-65535; 0 = any free port); :class:`AddressError` otherwise."""
    if not 0 <= int(port) <= 65535:
        raise AddressError(f"port {port} is not a TCP port (1-65535, or 0 for any free port)")
    return int(port)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; :class:`AddressError` naming them if it is taken or not ours."""
    check_host(host)
    check_port(port)
    family = socket.AF_INET6 if host != "localhost" and ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        why = "is taken by another program" if exc.errno in (98, 48) else f"cannot be bound ({exc.strerror})"
        raise AddressError(f"port {port} on {host} {why}; choose another port") from None
    return sock


def check_free(host: str, port: int) -> None:
    """Raise :class:`AddressError` if ``host:port`` cannot be bound now (checked, then released at once)."""
    bind_socket(host, port).close()
