"""What a worker keeps of the descriptors it inherits from main at fork().

Workers are forked without exec, so close-on-exec does not help: a worker
closes every descriptor it does not use itself as soon as it starts.
"""
from __future__ import annotations

import logging
import os


def log_descriptors() -> set:
    """Descriptors the logging handlers write to (a worker keeps them)."""
    out = set()
    loggers = [logging.getLogger()] + [l for l in logging.Logger.manager.loggerDict.values()
                                       if isinstance(l, logging.Logger)]
    for logger in loggers:
        for h in logger.handlers:
            for attr in ("stream", "socket"):
                try:
                    out.add(getattr(h, attr).fileno())
                except (AttributeError, OSError, ValueError):
                    pass
    return out


def close_descriptors_except(keep: set) -> None:
    """Close every open descriptor of this process not in `keep`."""
    try:
        open_fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:                                     # no /proc: close ranges
        low = 0
        for fd in sorted(keep):
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, os.sysconf("SC_OPEN_MAX"))
        return
    for fd in open_fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
