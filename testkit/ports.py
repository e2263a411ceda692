"""Free loopback ports for engines (port-for), and whether something already listens on one."""

from __future__ import annotations

import functools
import socket

from testkit.errors import EngineError

__all__ = ["free_port", "port_in_use"]


def free_port() -> int:
    """A free loopback port P whose cluster bus port P + 10000 is free too. port-for picks both among
    ports IANA has not assigned and outside the kernel's ephemeral range, so that no outgoing
    connection takes one of them before the engine binds it."""
    import port_for

    for _ in range(20):
        port = port_for.select_random(set(_bus_pairs()))
        if not port_for.port_is_used(port + 10_000):
            return port
    raise EngineError("no free loopback port with a free bus port (port + 10000) found")


@functools.cache
def _bus_pairs() -> frozenset[int]:
    import port_for

    good = port_for.available_good_ports()
    return frozenset(port for port in good if port + 10_000 in good)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts connections there. (Not port-for's check, which also counts a port that
    cannot be bound: a restarted server finds its own old connections in TIME_WAIT there.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0
