"""systemd's readiness protocol (sd_notify(3)) without libsystemd.

Under a unit with `Type=notify`, systemd passes `NOTIFY_SOCKET`; the main
process sends `READY=1` once every worker runs and the admin listens,
`RELOADING=1` … `READY=1` around a SIGHUP reload and `STOPPING=1` when it
drains. Without `NOTIFY_SOCKET` every call is a no-op.
"""
from __future__ import annotations

import os
import socket
import time


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; False when not under systemd
    or the socket is gone (never raises: readiness is best effort)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):                # abstract namespace
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), path)
        return True
    except OSError:
        return False


def ready() -> bool:
    return notify("READY=1\nMAINPID=%d\nSTATUS=serving" % os.getpid())


def reloading() -> bool:
    # systemd ≥ 253 wants the monotonic time of the reload request with it.
    usec = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
    return notify("RELOADING=1\nMONOTONIC_USEC=%d" % usec)


def stopping() -> bool:
    return notify("STOPPING=1\nSTATUS=draining")
