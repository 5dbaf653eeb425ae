"""The main process (Envoy's Server::InstanceImpl, with workers as processes).

Main opens one SO_REUSEPORT socket per listener per worker slot and keeps
them all: worker i inherits socket i across fork(). A worker that dies is
replaced on the same socket, so connections waiting in its accept queue are
served, not reset (closing a SO_REUSEPORT socket would reset them).

Reload (SIGHUP) starts a new *generation* of workers on the sockets main
already holds, then tells the old generation to drain. Old and new workers
share each socket (the same open file), so a connection in an accept queue
is taken by whichever worker still accepts: none is lost. Main runs an
asyncio (uvloop) loop for the admin listener, signals and supervision.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
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
# Generations that may drain while a new one serves; a reload beyond that
# ends the oldest at once (its connections are closed).
MAX_DRAINING_GENERATIONS = 5


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


def _raise_nofile_limit() -> None:
    """Use every descriptor the hard limit allows (HAProxy does the same): an
    edge proxy holds two per proxied connection."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _listener_key(listener) -> tuple:
    sa = listener.address.socket_address
    return (listener.name, sa.address, sa.port_value)


class ListenerSockets:
    """The listen sockets of one listener, one per worker slot."""

    def __init__(self, listener, slots: int) -> None:
        sa = listener.address.socket_address
        self.name = listener.name
        self.key = _listener_key(listener)
        self.address = sa.address
        family = socket.AF_INET6 if ":" in sa.address else socket.AF_INET
        self.sockets: List[socket.socket] = []
        port = sa.port_value
        try:
            for _ in range(slots):
                s = socket.socket(family, socket.SOCK_STREAM)
                self.sockets.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((sa.address, port))
                # Port 0: the first bind picks the port, the others share it.
                port = s.getsockname()[1]
                s.listen(LISTEN_BACKLOG)
                s.setblocking(False)
        except OSError:
            self.close()
            raise
        self.port = port

    def close(self) -> None:
        for s in self.sockets:
            s.close()


class WorkerProcess:
    """Main's handle on one worker: a slot of one generation."""

    def __init__(self, generation: "Generation", slot: int, row: int) -> None:
        self.generation = generation
        self.slot = slot
        self.row = row
        self.pid = 0
        self.pidfd = -1
        self.control: Optional[socket.socket] = None
        self.started_at = 0.0
        self.exited = False
        self.quick_deaths = 0


class Generation:
    """The workers started from one configuration."""

    def __init__(self, number: int, block: int, bootstrap,
                 listeners: Dict[str, ListenerSockets]) -> None:
        self.number = number
        self.block = block              # its rows in the stats region
        self.bootstrap = bootstrap
        self.listeners = listeners
        self.workers: List[WorkerProcess] = []
        self.draining = False

    @property
    def alive(self) -> bool:
        return any(not w.exited for w in self.workers)


class Server:
    """Give it a validated Bootstrap and options; `run()` serves until stopped."""

    def __init__(self, bootstrap, options: ServerOptions) -> None:
        self.bootstrap = bootstrap
        self.options = options
        self.concurrency = options.concurrency or os.cpu_count() or 1
        # Stat rows for: the serving generation, the draining ones, and one
        # being ended (still exiting) when a further reload starts.
        self.layout = StatsLayout(bootstrap, self.concurrency,
                                  generations=MAX_DRAINING_GENERATIONS + 2)
        self.stats = StatsStore(self.layout)
        self.generations: List[Generation] = []
        self.started = time.time()
        self.shutting_down = False
        self.draining = False
        self.healthcheck_failed = False
        self.state = "PRE_INITIALIZING"
        self.worker_restarts = 0
        self.admin = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._done: Optional[asyncio.Future] = None
        self._early_signal = 0
        self._admin_fd = -1

    # Views for the admin

    @property
    def current(self) -> Generation:
        return self.generations[-1]

    @property
    def draining_generations(self) -> int:
        return sum(1 for g in self.generations if g.draining and g.alive)

    @property
    def live(self) -> bool:
        return self.state == "LIVE"

    def listener_ports(self) -> Dict[str, tuple]:
        return {name: (ls.address, ls.port) for name, ls in self.current.listeners.items()}

    def uptime(self) -> float:
        return time.time() - self.started

    def workers(self) -> List[WorkerProcess]:
        return [w for g in self.generations for w in g.workers if not w.exited]

    def memory_info(self) -> Dict[str, int]:
        """RSS in bytes of main and of each running worker (by pid)."""
        def rss(pid: int) -> int:
            try:
                with open("/proc/%d/statm" % pid) as f:
                    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                return 0
        out = {"main": rss(os.getpid())}
        for w in self.workers():
            if w.pid:
                out["worker_%d_gen_%d" % (w.slot, w.generation.number)] = rss(w.pid)
        return out

    # Start-up

    def open_listeners(self, bootstrap, keep: Dict[str, ListenerSockets]) -> Dict[str, ListenerSockets]:
        """Sockets for `bootstrap`'s listeners: reuse those in `keep` with the
        same name and address, open the rest."""
        by_key = {ls.key: ls for ls in keep.values()}
        out: Dict[str, ListenerSockets] = {}
        try:
            for listener in bootstrap.static_resources.listeners:
                ls = by_key.get(_listener_key(listener))
                if ls is None:
                    try:
                        ls = ListenerSockets(listener, self.concurrency)
                    except OSError as exc:
                        sa = listener.address.socket_address
                        raise RuntimeError("cannot bind '%s:%d' for listener '%s': %s"
                                           % (sa.address, sa.port_value, listener.name,
                                              exc.strerror))
                out[listener.name] = ls
        except RuntimeError:
            for ls in out.values():
                if ls.key not in by_key:
                    ls.close()
            raise
        return out

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
            raise RuntimeError("cannot bind admin address '%s:%d': %s"
                               % (sa.address, sa.port_value, exc.strerror))
        s.setblocking(False)
        return s

    def free_block(self) -> Optional[int]:
        used = {g.block for g in self.generations if g.alive}
        for b in range(self.layout.generations):
            if b not in used:
                return b
        return None

    def start_generation(self, bootstrap, listeners: Dict[str, ListenerSockets],
                         block: int) -> Generation:
        number = self.generations[-1].number + 1 if self.generations else 0
        gen = Generation(number, block, bootstrap, listeners)
        for slot in range(self.concurrency):
            row = self.layout.worker_row(block, slot)
            gen.workers.append(WorkerProcess(gen, slot, row))
        self.generations.append(gen)
        for w in gen.workers:
            self.spawn_worker(w)
        return gen

    def spawn_worker(self, w: WorkerProcess) -> None:
        gen = w.generation
        fds = {name: ls.sockets[w.slot].fileno() for name, ls in gen.listeners.items()}
        plan = build_plan(gen.bootstrap, self.layout, fds)
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:                                   # worker
            code = 1
            try:
                parent_end.close()
                code = self._worker_main(w, plan, child_end)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        child_end.close()
        w.pid = pid
        w.exited = False
        w.control = parent_end
        w.started_at = time.monotonic()
        log.info("worker %d of generation %d started (pid %d)", w.slot, gen.number, pid)
        if self._loop is not None:
            self._watch(w)

    def _worker_main(self, w: WorkerProcess, plan: dict, control: socket.socket) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # main handles Ctrl-C
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # A worker forked from inside main's event loop inherits its signal
        # wakeup fd; the worker has its own loop.
        signal.set_wakeup_fd(-1)
        _worker.set_parent_death_signal(signal.SIGTERM)
        if os.getppid() == 1:
            return 0                                   # main died before we ran
        if os.environ.get("ENVOY_FAST_CRASH_WORKER_FOR_TEST"):
            os._exit(3)                                # tests of the crash-loop backoff
        # Only this worker's sockets stay open in it: a listen socket main
        # closes later (a listener removed by reload) must really close.
        mine = {ls.sockets[w.slot].fileno() for ls in w.generation.listeners.values()}
        for g in self.generations:
            for v in g.workers:
                if v.control is not None:
                    v.control.close()
            for ls in g.listeners.values():
                for sock in ls.sockets:
                    if sock.fileno() >= 0 and sock.fileno() not in mine:
                        sock.close()
        if self._admin_fd >= 0:
            os.close(self._admin_fd)
        control.setblocking(False)
        wlog = logging.getLogger("envoy_fast.worker.%d" % w.slot)
        worker = _worker.Worker(plan, self.stats.mem, w.row, control.fileno(),
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
        _raise_nofile_limit()
        listeners = self.open_listeners(self.bootstrap, {})
        try:
            admin_sock = self.open_admin_socket()
            self._admin_fd = admin_sock.fileno() if admin_sock is not None else -1
        except RuntimeError:
            for ls in listeners.values():
                ls.close()
            raise
        self.start_generation(self.bootstrap, listeners, 0)
        for name, ls in listeners.items():
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
        for w in self.workers():
            self._watch(w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGUSR1, self.reopen_logs)
        if self._early_signal:
            self._on_stop_signal(self._early_signal)
        if self.bootstrap.admin is not None and not self.shutting_down:
            from envoy_fast.admin.server import AdminServer
            self.admin = AdminServer(self)
            await self.admin.start(admin_sock)
        if not self.shutting_down and not self.draining:
            self.state = "LIVE"
            log.info("all workers started; envoy_fast %s is live", __version__)
        return await self._done

    def _on_early_signal(self, sig: int, frame) -> None:
        self._early_signal = sig

    def _on_stop_signal(self, sig: int) -> None:
        if self.draining:
            log.warning("caught %s while draining: closing now", signal.Signals(sig).name)
            self.shutdown(0)
            return
        log.warning("caught %s, draining for up to %gs", signal.Signals(sig).name,
                    self.options.drain_time_s)
        self.drain_and_exit()

    def drain_and_exit(self) -> None:
        """Stop accepting everywhere, let connections finish (at most
        --drain-time-s), exit 0 when every worker is gone."""
        self.draining = True
        self.state = "DRAINING"
        for g in self.generations:
            g.draining = True
        self.send_to_workers({"op": "drain", "deadline": self.options.drain_time_s})
        self._maybe_done()
        assert self._loop is not None
        # Workers close what is left at the deadline; a wedged one is killed.
        self._loop.call_later(self.options.drain_time_s + 5.0, self.shutdown, 0)

    def shutdown(self, code: int = 0) -> None:
        """Stop now: workers are stopped by _stop_workers() as run() returns."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.state = "DRAINING"
        if self._done is not None and not self._done.done():
            self._done.set_result(code)

    def _maybe_done(self) -> None:
        if self.draining and not self.workers():
            self.shutdown(0)

    # Health and listener draining (admin)

    def healthcheck_fail(self) -> None:
        self.healthcheck_failed = True
        if self.state == "LIVE":
            self.state = "DRAINING"

    def healthcheck_ok(self) -> None:
        self.healthcheck_failed = False
        if not self.draining and not self.shutting_down:
            self.state = "LIVE"

    def drain_listeners(self, graceful: bool = False) -> None:
        """Stop accepting on every listener (after --drain-time-s if graceful);
        open connections carry on."""
        if graceful:
            assert self._loop is not None
            self._loop.call_later(self.options.drain_time_s, self.send_to_workers,
                                  {"op": "stop_listening"})
        else:
            self.send_to_workers({"op": "stop_listening"})

    # Supervision

    def _watch(self, w: WorkerProcess) -> None:
        # A pidfd becomes readable when the worker exits (uvloop keeps SIGCHLD
        # for itself).
        if w.pidfd >= 0 or not w.pid:
            return
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
        if w.control is not None:
            w.control.close()
            w.control = None
        gen = w.generation
        if self.shutting_down or self.draining or gen.draining or gen is not self.current:
            self._on_worker_gone(w)
        else:
            self._on_worker_death(w, status)

    def _on_worker_gone(self, w: WorkerProcess) -> None:
        """A worker that was asked to go has gone: keep what it counted."""
        w.exited = True
        self.stats.retire_row(w.row)
        gen = w.generation
        if not gen.alive:
            log.info("generation %d finished draining", gen.number)
            self._close_unused_listeners()
        self._maybe_done()

    def _close_unused_listeners(self) -> None:
        used = {id(ls) for g in self.generations if g.alive for ls in g.listeners.values()}
        for g in self.generations:
            if g.alive:
                continue
            for name, ls in list(g.listeners.items()):
                if id(ls) not in used and ls.sockets and ls.sockets[0].fileno() >= 0:
                    # No worker of any generation uses it any more: only now
                    # may it close (closing resets connections in its queue).
                    if not self.draining:
                        log.info("closing listener '%s' (removed by reload)", name)
                    ls.close()
        self.generations = [g for g in self.generations if g.alive or g is self.current]

    def _on_worker_death(self, w: WorkerProcess, status: int) -> None:
        if os.WIFSIGNALED(status):
            how = "killed by %s" % signal.Signals(os.WTERMSIG(status)).name
        else:
            how = "exited with %d" % os.waitstatus_to_exitcode(status)
        log.error("worker %d %s; restarting it on the same sockets", w.slot, how)
        self.stats.reset_gauges_of_row(w.row)
        self.stats.release_resources_of_row(w.row)
        self.worker_restarts += 1
        # Replace it at once: its socket's accept queue is waiting. Only a
        # worker that also died young last time (a crash loop) waits, longer
        # each time, up to 30 s, so a broken worker does not spin.
        now = time.monotonic()
        died_young = now - w.started_at < RESTART_BACKOFF_S
        w.quick_deaths = w.quick_deaths + 1 if died_young else 0
        delay = 0.0 if w.quick_deaths < 2 else min(30.0, RESTART_BACKOFF_S * 2 ** (w.quick_deaths - 2))
        if delay:
            log.error("worker %d keeps dying at start; next restart in %gs", w.slot, delay)
        assert self._loop is not None
        self._loop.call_later(delay, self._respawn, w)

    def _respawn(self, w: WorkerProcess) -> None:
        if not self.shutting_down and not self.draining and w.pid == 0 \
                and not w.generation.draining:
            self.spawn_worker(w)

    # Reload

    def reload(self) -> bool:
        """SIGHUP: re-read the config; if valid, start a new generation and
        drain the old one. An invalid config leaves everything as it is."""
        if self.draining or self.shutting_down:
            return False
        from envoy_fast.config import ConfigError, load_bootstrap
        opts = self.options
        block = self.free_block()
        if block is None:
            log.error("reload refused: earlier generations are still exiting; try again")
            return False
        try:
            bootstrap = load_bootstrap(config_path=opts.config_path or None,
                                       config_yaml=opts.config_yaml or None)
            self.layout.extend(bootstrap)
            listeners = self.open_listeners(bootstrap, self.current.listeners)
        except (ConfigError, ValueError, RuntimeError, OSError) as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return False
        # Keep at most MAX_DRAINING_GENERATIONS draining: the oldest goes now.
        draining = [g for g in self.generations if g.draining and g.alive]
        while len(draining) >= MAX_DRAINING_GENERATIONS:
            oldest = draining.pop(0)
            log.warning("too many draining generations: ending generation %d now", oldest.number)
            self._send(oldest, {"op": "shutdown"})
        old = self.current
        self.bootstrap = bootstrap
        self.start_generation(bootstrap, listeners, block)
        old.draining = True
        self._send(old, {"op": "drain", "deadline": opts.drain_time_s})
        assert self._loop is not None
        self._loop.call_later(opts.parent_shutdown_time_s, self._end_generation, old)
        log.info("reloaded: generation %d serving, generation %d draining",
                 self.current.number, old.number)
        return True

    def _end_generation(self, gen: Generation) -> None:
        # --parent-shutdown-time-s caps how long an old generation may live.
        for w in gen.workers:
            if w.pid:
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def reopen_logs(self) -> None:
        """SIGUSR1: workers reopen their access-log files (log rotation)."""
        self.send_to_workers({"op": "reopen_logs"})

    # Control channel

    def _send(self, gen: Generation, msg: dict) -> None:
        frame = msgspec.msgpack.encode(msg)
        data = len(frame).to_bytes(4, "big") + frame
        for w in gen.workers:
            if w.control is not None:
                try:
                    w.control.sendall(data)
                except OSError:
                    pass

    def send_to_workers(self, msg: dict) -> None:
        for g in self.generations:
            self._send(g, msg)

    def _stop_workers(self, timeout: float = 5.0) -> None:
        # Closing the control channel is the stop signal (EOF); SIGTERM backs
        # it up, SIGKILL ends a worker that does not go.
        workers = [w for g in self.generations for w in g.workers]
        for w in workers:
            if w.control is not None:
                w.control.close()
                w.control = None
            if w.pid:
                try:
                    os.kill(w.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for w in workers:
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
        for g in self.generations:
            for ls in g.listeners.values():
                ls.close()
