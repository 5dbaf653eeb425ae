"""The main process (Envoy's Server::InstanceImpl, with workers as processes).

Main opens one SO_REUSEPORT socket per listener per worker slot and keeps
them all: worker i inherits socket i across fork(). A worker that dies is
replaced on the same socket, so connections waiting in its accept queue are
served, not reset (closing a SO_REUSEPORT socket would reset them).
Main then runs an asyncio (uvloop) loop for the admin listener and signals.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import msgspec

from envoy_fast import __version__, _worker
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore

log = logging.getLogger("envoy_fast.main")

LISTEN_BACKLOG = 4096
# A worker that keeps dying is restarted at most this often.
RESTART_BACKOFF_S = 1.0


@dataclass
class ServerOptions:
    """Command-line options that shape the running server (Envoy's names)."""
    concurrency: int = 0
    config_path: str = ""
    config_yaml: str = ""
    log_level: str = "info"
    drain_time_s: float = 600.0
    parent_shutdown_time_s: float = 900.0
    base_id: int = 0
    argv: List[str] = field(default_factory=list)


class ListenerSockets:
    """The listen sockets of one listener, one per worker slot."""

    def __init__(self, listener, slots: int) -> None:
        sa = listener.address.socket_address
        self.name = listener.name
        self.address = sa.address
        family = socket.AF_INET6 if ":" in sa.address else socket.AF_INET
        self.sockets: List[socket.socket] = []
        port = sa.port_value
        for _ in range(slots):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((sa.address, port))
            # Port 0: the first bind picks the port, the others share it.
            port = s.getsockname()[1]
            s.listen(LISTEN_BACKLOG)
            s.setblocking(False)
            self.sockets.append(s)
        self.port = port

    def close(self) -> None:
        for s in self.sockets:
            s.close()


class WorkerProcess:
    """Main's handle on one worker slot."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.pid = 0
        self.control: Optional[socket.socket] = None
        self.started_at = 0.0
        self.restarts = 0
        self.pidfd = -1


class Server:
    """Loads nothing itself: give it a validated Bootstrap and options."""

    def __init__(self, bootstrap, options: ServerOptions) -> None:
        self.bootstrap = bootstrap
        self.options = options
        self.concurrency = options.concurrency or os.cpu_count() or 1
        self.layout = StatsLayout(bootstrap, self.concurrency)
        self.stats = StatsStore(self.layout)
        self.listeners: Dict[str, ListenerSockets] = {}
        self.workers: List[WorkerProcess] = []
        self.started = time.time()
        self.shutting_down = False
        self.state = "PRE_INITIALIZING"
        self.admin = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._done: Optional[asyncio.Future] = None
        self._early_signal = 0

    # Start-up

    def open_listeners(self) -> None:
        for listener in self.bootstrap.static_resources.listeners:
            try:
                self.listeners[listener.name] = ListenerSockets(listener, self.concurrency)
            except OSError as exc:
                sa = listener.address.socket_address
                for ls in self.listeners.values():
                    ls.close()
                raise RuntimeError("cannot bind '%s:%d' for listener '%s': %s"
                                   % (sa.address, sa.port_value, listener.name, exc.strerror))

    def open_admin_socket(self) -> Optional[socket.socket]:
        """Bind the admin listener before any worker starts, so a busy port
        fails start-up cleanly."""
        if self.bootstrap.admin is None:
            return None
        sa = self.bootstrap.admin.address.socket_address
        family = socket.AF_INET6 if ":" in sa.address else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((sa.address, sa.port_value))
            s.listen(128)
        except OSError as exc:
            s.close()
            raise RuntimeError("cannot bind '%s:%d': %s" % (sa.address, sa.port_value, exc.strerror))
        s.setblocking(False)
        return s

    def worker_plan(self, index: int) -> dict:
        fds = {name: ls.sockets[index].fileno() for name, ls in self.listeners.items()}
        return build_plan(self.bootstrap, self.layout, fds)

    def spawn_worker(self, w: WorkerProcess) -> None:
        plan = self.worker_plan(w.index)
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:                                   # worker
            code = 1
            try:
                parent_end.close()
                code = self._worker_main(w.index, plan, child_end)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        child_end.close()
        w.pid = pid
        w.control = parent_end
        w.started_at = time.monotonic()
        log.info("worker %d started (pid %d)", w.index, pid)

    def _worker_main(self, index: int, plan: dict, control: socket.socket) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # main handles Ctrl-C
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # A worker respawned from inside main's event loop inherits its
        # signal wakeup fd; the worker has its own loop.
        signal.set_wakeup_fd(-1)
        _worker.set_parent_death_signal(signal.SIGTERM)
        if os.getppid() == 1:
            return 0                                   # main died before we ran
        control.setblocking(False)
        wlog = logging.getLogger("envoy_fast.worker.%d" % index)
        worker = _worker.Worker(plan, self.stats.mem, index, control.fileno(),
                                error_log=wlog.error)
        # The data plane cuts its own reference cycles on close; the cyclic
        # collector only needs to run rarely, and never over start-up state.
        gc.freeze()
        gc.set_threshold(100000, 50, 100)
        worker.run()
        return 0

    # Running

    def run(self) -> int:
        """Open sockets, fork workers, serve admin; returns the exit code."""
        # A stop signal that lands before the event loop takes over is kept
        # and honoured as soon as it does: start-up is never killed half-way.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_early_signal)
        from envoy_fast import cli
        self._early_signal = cli.early_stop_signal
        self.open_listeners()
        admin_sock = self.open_admin_socket()
        for i in range(self.concurrency):
            self.workers.append(WorkerProcess(i))
        for w in self.workers:
            self.spawn_worker(w)
        for name, ls in self.listeners.items():
            log.info("listener '%s' on %s:%d", name, ls.address, ls.port)
        try:
            import uvloop
            loop = uvloop.new_event_loop()
        except ImportError:                             # pragma: no cover
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            return loop.run_until_complete(self._main(admin_sock))
        finally:
            self._stop_workers()
            loop.close()

    async def _main(self, admin_sock: Optional[socket.socket]) -> int:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        if self._early_signal:
            self._on_stop_signal(self._early_signal)
        for w in self.workers:
            self._watch(w)
        if self.bootstrap.admin is not None:
            from envoy_fast.admin.server import AdminServer
            self.admin = AdminServer(self)
            await self.admin.start(admin_sock)
        self.state = "LIVE"
        log.info("all workers started; envoy_fast %s is live", __version__)
        return await self._done

    def _on_early_signal(self, sig: int, frame) -> None:
        self._early_signal = sig

    def _on_stop_signal(self, sig: int) -> None:
        log.warning("caught %s, shutting down", signal.Signals(sig).name)
        self.shutdown(0)

    def shutdown(self, code: int = 0) -> None:
        if self.shutting_down:
            return
        self.shutting_down = True
        self.state = "DRAINING"
        if self._done is not None and not self._done.done():
            self._done.set_result(code)

    def _watch(self, w: WorkerProcess) -> None:
        # A pidfd becomes readable when the worker exits (uvloop keeps SIGCHLD
        # for itself).
        w.pidfd = os.pidfd_open(w.pid)
        assert self._loop is not None
        self._loop.add_reader(w.pidfd, self._reap, w)

    def _reap(self, w: WorkerProcess) -> None:
        assert self._loop is not None
        self._loop.remove_reader(w.pidfd)
        os.close(w.pidfd)
        w.pidfd = -1
        try:
            pid, status = os.waitpid(w.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = w.pid, 0
        if pid == 0:
            return
        w.pid = 0
        if not self.shutting_down:
            self._on_worker_death(w, status)

    def _on_worker_death(self, w: WorkerProcess, status: int) -> None:
        if os.WIFSIGNALED(status):
            how = "killed by %s" % signal.Signals(os.WTERMSIG(status)).name
        else:
            how = "exited with %d" % os.waitstatus_to_exitcode(status)
        log.error("worker %d %s; restarting it on the same sockets", w.index, how)
        if w.control is not None:
            w.control.close()
            w.control = None
        self.stats.reset_gauges_of_row(w.index)
        w.restarts += 1
        delay = 0.0
        if time.monotonic() - w.started_at < RESTART_BACKOFF_S:
            delay = RESTART_BACKOFF_S
        assert self._loop is not None
        self._loop.call_later(delay, self._respawn, w)

    def _respawn(self, w: WorkerProcess) -> None:
        if not self.shutting_down and w.pid == 0:
            self.spawn_worker(w)
            self._watch(w)

    def send_to_workers(self, msg: dict) -> None:
        frame = msgspec.msgpack.encode(msg)
        data = len(frame).to_bytes(4, "big") + frame
        for w in self.workers:
            if w.control is not None:
                try:
                    w.control.sendall(data)
                except OSError:
                    pass

    def _stop_workers(self, timeout: float = 5.0) -> None:
        # Closing the control channel is the stop signal (EOF); SIGTERM backs
        # it up, SIGKILL ends a worker that does not go.
        for w in self.workers:
            if w.control is not None:
                w.control.close()
                w.control = None
            if w.pid:
                try:
                    os.kill(w.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for w in self.workers:
            while w.pid and time.monotonic() < deadline:
                try:
                    pid, _ = os.waitpid(w.pid, os.WNOHANG)
                except ChildProcessError:
                    pid = w.pid
                if pid:
                    w.pid = 0
                else:
                    time.sleep(0.01)
            if w.pid:
                os.kill(w.pid, signal.SIGKILL)
                os.waitpid(w.pid, 0)
                w.pid = 0
        for ls in self.listeners.values():
            ls.close()

    # Views for the admin

    def listener_ports(self) -> Dict[str, tuple]:
        return {name: (ls.address, ls.port) for name, ls in self.listeners.items()}

    def uptime(self) -> float:
        return time.time() - self.started
