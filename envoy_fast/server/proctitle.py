"""Process titles for workers (what ``ps`` and ``/proc/<pid>/cmdline`` show).

Linux shows a process's command line from the memory its argv strings were
laid out in (``arg_start``..``arg_end`` in ``/proc/self/stat``). Python has
copied argv by then, so that memory can be overwritten with the title,
padded with NULs; a title longer than the original command line is cut.
The thread name (``comm``, 15 bytes, what ``top`` shows) is set too.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_PR_SET_NAME = 15


def _arg_area() -> tuple:
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    # Fields after the parenthesised command name; arg_start is field 48.
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[45]), int(fields[46])


def set_title(title: str, comm: str = "") -> bool:
    """Show `title` as this process's command line; False if it cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if comm:
            libc.prctl(_PR_SET_NAME, ctypes.c_char_p(comm.encode()[:15]), 0, 0, 0)
        start, end = _arg_area()
    except (OSError, ValueError, IndexError):
        return False
    size = end - start
    if size <= 1:
        return False
    data = title.encode()[:size - 1]
    ctypes.memset(start, 0, size)
    ctypes.memmove(start, data, len(data))
    return True
