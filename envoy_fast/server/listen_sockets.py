"""The listen sockets main owns for each listener, one per worker slot.

Main opens them before any worker starts and keeps them for the listener's
life: worker i inherits slot i's socket across fork(), and a successor
inherits the same socket, so its accept queue is never reset.
"""
from __future__ import annotations

import logging
import socket
from typing import List

log = logging.getLogger("envoy_fast.main")

LISTEN_BACKLOG = 4096


def listener_key(listener) -> tuple:
    """What identifies a listener across reloads: its name and address."""
    sa = listener.address.socket_address
    return (listener.name, sa.address, sa.port_value, listener.enable_reuse_port)


def _listen_socket(family: int, address: str, port: int, reuse_port: bool) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((address, port))
    except OSError:
        s.close()
        raise
    return s


class ListenerSockets:
    """The listen sockets of one listener, one per worker slot; with
    ``enable_reuse_port: false`` one socket that every slot shares (and no
    SO_REUSEPORT, so nobody else can bind the port).

    A socket is taken out of service with shutdown(), not close(): that
    takes it out of its SO_REUSEPORT group at once (new clients go to the
    other slots, or are refused when none is left) whoever else holds it,
    and it keeps its port, so listen() puts it back.
    """

    def __init__(self, listener, slots: int) -> None:
        sa = listener.address.socket_address
        self.name = listener.name
        self.key = listener_key(listener)
        self.address = sa.address
        family = socket.AF_INET6 if ":" in sa.address else socket.AF_INET
        self.sockets: List[socket.socket] = []
        self.stopped = False            # stopped listening for good
        self.suspended: set = set()     # slots whose socket is shut down for now
        port = sa.port_value
        # A shared socket: every slot polls it, so a slot without a worker
        # needs no stand-in and is never suspended.
        self.shared = not listener.enable_reuse_port
        picker = None
        try:
            if port == 0 and not self.shared:
                # Pick the port first and bind every slot to it by number: a
                # socket bound to port 0 gives its port back when shut down.
                picker = _listen_socket(family, sa.address, 0, reuse_port=True)
                port = picker.getsockname()[1]
            for _ in range(1 if self.shared else slots):
                s = _listen_socket(family, sa.address, port, reuse_port=not self.shared)
                self.sockets.append(s)
                port = s.getsockname()[1]
                s.listen(LISTEN_BACKLOG)
                s.setblocking(False)
        except OSError:
            self.close()
            raise
        finally:
            if picker is not None:
                picker.close()
        self.port = port
        if self.shared:
            # Every worker polls the one socket; the first to accept wins.
            self.sockets = self.sockets * slots

    def fileno(self, slot: int) -> int:
        """The socket a worker of `slot` accepts on; -1 once stopped."""
        return -1 if self.stopped else self.sockets[slot].fileno()

    def suspend(self, slot: int) -> None:
        """Refuse what would queue in `slot`'s socket: no worker can serve it
        (connections already queued there are reset)."""
        if self.stopped or self.shared or slot in self.suspended:
            return
        try:
            self.sockets[slot].shutdown(socket.SHUT_RD)
        except OSError:
            pass
        self.suspended.add(slot)

    def resume(self, slot: int) -> None:
        """Listen again on a suspended slot's socket (a worker takes it)."""
        if self.stopped or slot not in self.suspended:
            return
        self.suspended.discard(slot)
        try:
            self.sockets[slot].listen(LISTEN_BACKLOG)
        except OSError as exc:
            log.error("listener '%s': cannot listen again on %s:%d: %s",
                      self.name, self.address, self.port, exc.strerror)

    def close(self) -> None:
        for s in self.sockets:
            s.close()
