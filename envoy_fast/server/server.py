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
from envoy_fast.server import proctitle, sd_notify
from envoy_fast.server.descriptors import close_descriptors_except, log_descriptors
from envoy_fast.server.listen_sockets import ListenerSockets, listener_key
from envoy_fast.server.plan import build_plan
from envoy_fast.server.plan_types import WorkerPlan
from envoy_fast.stats.store import StatsLayout, StatsStore

log = logging.getLogger("envoy_fast.main")

# Deferred during start-up, handled by the loop afterwards.
_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
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
    log_path: str = ""
    log_format: str = ""
    log_format_from_cli: bool = False   # --log-format given: the bootstrap's is refused
    component_log_level: str = ""
    #: Signals caught before the event loop runs (the caller's deferring
    #: handler appends to this list); honoured once the loop takes over.
    early_signals: List[int] = field(default_factory=list)


def _endpoint_count(cluster) -> int:
    la = cluster.load_assignment
    return sum(len(loc.lb_endpoints) for loc in la.endpoints) if la is not None else 0


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
        self.in_backoff = False
        # While this slot has no worker, a live sibling may accept on its
        # sockets: `adopter` is that sibling, `adopted` the slots it serves.
        self.adopter: Optional["WorkerProcess"] = None
        self.adopted: set = set()

    @property
    def running(self) -> bool:
        return bool(self.pid) and self.control is not None


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
        self._early_signals: List[int] = []

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
                ls = by_key.get(listener_key(listener))
                if ls is None or ls.stopped:
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
        for ls in gen.listeners.values():
            ls.resume(w.slot)
        fds = {name: ls.fileno(w.slot) for name, ls in gen.listeners.items()}
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
        if w.adopter is not None:
            # Its own worker is back: the sibling stops accepting for it.
            self._send_to(w.adopter, {"op": "release", "slot": w.slot})
            w.adopter.adopted.discard(w.slot)
            w.adopter = None
        if self._loop is not None:
            self._watch(w)

    def _worker_main(self, w: WorkerProcess, plan: WorkerPlan, control: socket.socket) -> int:
        # Main's objects, garbage included, are never finalized here: none
        # may close a descriptor number this worker has reused.
        gc.freeze()
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
        crash = os.environ.get("ENVOY_FAST_CRASH_WORKER_FOR_TEST")
        if crash and (crash == "all" or str(w.slot) in crash.split(",")):
            os._exit(3)                                # tests of the crash-loop backoff
        proctitle.set_title("envoy-fast: worker %d (generation %d)" % (w.slot, w.generation.number),
                            "ef-worker-%d" % w.slot)
        # Keep only what this worker uses: its slot's listen sockets (a
        # socket main closes later must really close, and other slots' are
        # not its to serve), its control channel, stdio and log files. Main's
        # admin connections, loop descriptors, pidfds and the other workers'
        # channels would otherwise stay open as long as this worker.
        from envoy_fast import app_log
        control_fd = control.detach()
        keep = {0, 1, 2, control_fd} | log_descriptors() | set(app_log.log_fds())
        keep.update(l.fd for l in plan.listeners if l.fd >= 0)
        close_descriptors_except(keep)
        _worker.set_app_log_reopen(app_log.reopen)
        wlog = logging.getLogger("envoy_fast.worker.%d" % w.slot)
        worker = _worker.Worker(plan, self.stats.mem, w.row, control_fd,
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
        # A signal that lands before the event loop takes over is kept and
        # honoured as soon as it does: start-up is never killed half-way.
        self._early_signals = self.options.early_signals
        for sig in _HANDLED_SIGNALS:
            signal.signal(sig, self._on_early_signal)
        self._log_start()
        _raise_nofile_limit()
        listeners = self.open_listeners(self.bootstrap, {})
        try:
            admin_sock = self.open_admin_socket()
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
            # Already stopping: a further signal must not kill main half-way
            # (closing the loop restores SIGINT's KeyboardInterrupt).
            signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED_SIGNALS)
            self._stop_workers()
            loop.close()
            # Ignored from here to exit (interpreter shutdown would restore
            # the default action of a Python-level handler).
            for sig in _HANDLED_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED_SIGNALS)

    async def _main(self, admin_sock: Optional[socket.socket]) -> int:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        for w in self.workers():
            self._watch(w)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
        loop.add_signal_handler(signal.SIGUSR1, self._on_reopen_signal)
        early = list(self._early_signals)
        stops = [sig for sig in early if sig in (signal.SIGTERM, signal.SIGINT)]
        for sig in stops[:2]:
            self._on_stop_signal(sig)
        if self.bootstrap.admin is not None and not self.shutting_down:
            from envoy_fast.admin.server import AdminServer
            self.admin = AdminServer(self)
            await self.admin.start(admin_sock)
        if not self.shutting_down and not self.draining:
            self.state = "LIVE"
            log.info("all workers started; envoy_fast %s is live", __version__)
            sd_notify.ready()
            # A reload or reopen asked for while starting: the file may have
            # changed after it was read, so it is applied now (once).
            if signal.SIGUSR1 in early:
                self._on_reopen_signal()
            if signal.SIGHUP in early:
                self._on_reload_signal()
        return await self._done

    def _on_early_signal(self, sig: int, frame) -> None:
        self._early_signals.append(sig)

    def _on_reload_signal(self) -> None:
        log.info("caught SIGHUP: reloading '%s'", self.options.config_path or "<--config-yaml>")
        self.reload()

    def _on_reopen_signal(self) -> None:
        log.info("caught SIGUSR1: reopening log files")
        self.reopen_logs()

    def _log_start(self) -> None:
        opts = self.options
        sr = self.bootstrap.static_resources
        log.info("starting envoy_fast %s: config '%s', concurrency %d, log level %s",
                 __version__, opts.config_path or "<--config-yaml>", self.concurrency,
                 opts.log_level)
        log.info("loading %d listener(s), %d cluster(s)", len(sr.listeners), len(sr.clusters))
        for c in sr.clusters:
            log.info("cluster '%s': %s, %s, %d endpoint(s)", c.name, c.type, c.lb_policy,
                     _endpoint_count(c))

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
        sd_notify.stopping()
        drain = {"op": "drain", "deadline": self.options.drain_time_s}
        self._stop_listeners(self.current, None, drain)
        for g in self.generations:
            g.draining = True
            if g is not self.current:
                self._send(g, drain)
            self._retire_dead(g)
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
        # As Envoy's drainClose(): HTTP/1 responses carry connection: close.
        self.send_to_workers({"op": "drain_close", "on": True})

    def healthcheck_ok(self) -> None:
        self.healthcheck_failed = False
        if not self.draining and not self.shutting_down:
            self.state = "LIVE"
        self.send_to_workers({"op": "drain_close", "on": False})

    def drain_listeners(self, graceful: bool = False) -> None:
        """Stop listening on every listener (after --drain-time-s if
        graceful): new clients are refused, queued and open connections are
        served. A reload listens again."""
        if graceful:
            assert self._loop is not None
            self._loop.call_later(self.options.drain_time_s, self.drain_listeners)
        elif not self.shutting_down:
            self._stop_listeners(self.current, None, {"op": "stop_listening"})

    def _stop_listeners(self, gen: Generation, names: Optional[List[str]], msg: dict) -> None:
        """Send `msg` (drain or stop_listening) to `gen`'s workers, with the
        listeners `names` (None: all) to stop for good: each worker accepts
        what their sockets have queued, then shuts them down, so new clients
        are refused. A slot with no worker is first handed to a live sibling;
        with none, its queue is lost and its sockets are shut down here."""
        stopping = [ls for name, ls in gen.listeners.items()
                    if (names is None or name in names) and not ls.stopped]
        self._adopt_orphans(gen, every_dead=True)
        self._send(gen, dict(msg, stop=names))
        for w in gen.workers:
            if not w.running and not (w.adopter is not None and w.adopter.running):
                for ls in stopping:
                    ls.suspend(w.slot)
        for ls in stopping:
            ls.stopped = True
            ls.close()       # main's copies; each worker closes its own when done

    # Slots without a worker

    def _adopt_orphans(self, gen: Generation, every_dead: bool = False) -> None:
        """Give each slot of `gen` with no worker that is not about to be
        restarted at once (in crash backoff; any when `every_dead`) a live
        sibling that accepts on its sockets meanwhile. A slot in backoff with
        no sibling alive refuses its share of new connections instead."""
        for w in gen.workers:
            if w.running or w.exited or (w.adopter is not None and w.adopter.running):
                continue
            w.adopter = None
            if not (every_dead or w.in_backoff):
                continue        # its successor takes its queue in a moment
            if self._adopt(w):
                continue
            if w.in_backoff and not every_dead:
                log.warning("no worker can serve the sockets of worker %d while it waits to "
                            "restart: refusing their connections meanwhile", w.slot)
                for ls in gen.listeners.values():
                    ls.suspend(w.slot)

    def _adopt(self, w: WorkerProcess) -> bool:
        """Pass `w`'s listen sockets to its least busy live sibling."""
        gen = w.generation
        siblings = [v for v in gen.workers if v is not w and v.running]
        # A shared socket (enable_reuse_port: false) is polled by every worker.
        names = [name for name, ls in gen.listeners.items() if not ls.stopped and not ls.shared]
        if not names:
            return True
        if not siblings:
            return False
        sibling = min(siblings, key=lambda v: len(v.adopted))
        for name in names:
            gen.listeners[name].resume(w.slot)
        # SCM_RIGHTS carries at most 253 descriptors per message.
        for i in range(0, len(names), 200):
            chunk = names[i:i + 200]
            fds = [gen.listeners[name].fileno(w.slot) for name in chunk]
            if not self._send_to(sibling, {"op": "adopt", "slot": w.slot, "listeners": chunk},
                                 fds):
                return False
        w.adopter = sibling
        sibling.adopted.add(w.slot)
        log.info("worker %d of generation %d serves the sockets of worker %d meanwhile",
                 sibling.slot, gen.number, w.slot)
        return True

    def _retire_dead(self, gen: Generation) -> None:
        """Dead workers of a generation that will not restart them are gone."""
        for w in gen.workers:
            if not w.pid and not w.exited:
                self._on_worker_gone(w)

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
        log.debug("worker %d of generation %d exited", w.slot, w.generation.number)
        self._forget_adopted(w)
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
                if id(ls) not in used:
                    # No worker of any generation uses it any more (normally
                    # stopped and closed by then already).
                    ls.close()
        self.generations = [g for g in self.generations if g.alive or g is self.current]

    def _on_worker_death(self, w: WorkerProcess, status: int) -> None:
        if os.WIFSIGNALED(status):
            how = "killed by %s" % signal.Signals(os.WTERMSIG(status)).name
        else:
            how = "exited with %d" % os.waitstatus_to_exitcode(status)
        log.error("worker %d %s; restarting it on the same sockets", w.slot, how)
        self._forget_adopted(w)
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
        w.in_backoff = delay > 0
        self._adopt_orphans(w.generation)
        assert self._loop is not None
        self._loop.call_later(delay, self._respawn, w)

    def _forget_adopted(self, w: WorkerProcess) -> None:
        # The slots `w` served for are without a worker again.
        for slot in w.adopted:
            w.generation.workers[slot].adopter = None
        w.adopted = set()

    def _respawn(self, w: WorkerProcess) -> None:
        w.in_backoff = False
        if not self.shutting_down and not self.draining and w.pid == 0 \
                and not w.generation.draining:
            self.spawn_worker(w)
            self._adopt_orphans(w.generation)

    # Reload

    def reload(self) -> bool:
        """SIGHUP: re-read the config; if valid, start a new generation and
        drain the old one. An invalid config leaves everything as it is."""
        if self.draining or self.shutting_down:
            return False
        sd_notify.reloading()
        try:
            return self._reload()
        finally:
            if not self.draining and not self.shutting_down:
                sd_notify.ready()

    def _reload(self) -> bool:
        from envoy_fast.config import ConfigError, load_bootstrap
        opts = self.options
        block = self.free_block()
        if block is None:
            log.error("reload refused: earlier generations are still exiting; try again")
            self.stats.inc_server("reload_failure")
            return False
        try:
            bootstrap = load_bootstrap(config_path=opts.config_path or None,
                                       config_yaml=opts.config_yaml or None)
            alc = bootstrap.application_log_config
            if opts.log_format_from_cli and alc is not None and alc.log_format is not None:
                raise ConfigError("Only one of ApplicationLogConfig.log_format or CLI option "
                                  "--log-format can be specified.")
            self.layout.extend(bootstrap)
            listeners = self.open_listeners(bootstrap, self.current.listeners)
        except ConfigError as exc:
            self._log_reload_errors(exc)
            self.stats.inc_server("reload_failure")
            return False
        except (ValueError, RuntimeError, OSError) as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            self.stats.inc_server("reload_failure")
            return False
        self.stats.inc_server("reload_success")
        self._log_reload_changes(self.bootstrap, bootstrap)
        self._apply_log_format(bootstrap)
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
        kept = {id(ls) for ls in listeners.values()}
        removed = [name for name, ls in old.listeners.items()
                   if id(ls) not in kept and not ls.stopped]
        for name in removed:
            log.info("closing listener '%s' (removed by reload)", name)
        self._stop_listeners(old, removed, {"op": "drain", "deadline": opts.drain_time_s})
        self._retire_dead(old)
        assert self._loop is not None
        self._loop.call_later(opts.parent_shutdown_time_s, self._end_generation, old)
        log.info("reloaded: generation %d serving, generation %d draining",
                 self.current.number, old.number)
        return True

    def _log_reload_errors(self, first) -> None:
        """Everything validate mode would print: each error with its line
        and hint."""
        from envoy_fast.config import validate_bootstrap
        opts = self.options
        errors = validate_bootstrap(config_path=opts.config_path or None,
                                    config_yaml=opts.config_yaml or None) or [first]
        shown = opts.config_path or "<--config-yaml>"
        log.error("reload failed, keeping the running configuration: %d error%s in '%s'",
                  len(errors), "" if len(errors) == 1 else "s", shown)
        for error in errors:
            for line in error.describe().splitlines():
                log.error("  %s", line)

    def _apply_log_format(self, bootstrap) -> None:
        """A reload may change application_log_config: main and the new
        generation use it (unless --log-format was given)."""
        from envoy_fast import app_log
        if self.options.log_format_from_cli:
            return
        alc = bootstrap.application_log_config
        fmt = alc.log_format if alc is not None else None
        if fmt is not None and fmt.json_format is not None:
            app_log.set_format(json_format=fmt.json_format)
        else:
            app_log.set_format(fmt.text_format if fmt is not None and fmt.text_format
                               else app_log.DEFAULT_FORMAT)

    def _log_reload_changes(self, old, new) -> None:
        any_change = False
        for kind, before, after in (
                ("listener", old.static_resources.listeners, new.static_resources.listeners),
                ("cluster", old.static_resources.clusters, new.static_resources.clusters)):
            a = {x.name: x for x in before}
            b = {x.name: x for x in after}
            added = [n for n in b if n not in a]
            removed = [n for n in a if n not in b]
            changed = [n for n in b if n in a and a[n] != b[n]]
            for what, names in (("added", added), ("removed", removed), ("changed", changed)):
                if names:
                    any_change = True
                    log.info("reload: %s %s%s: %s", what, kind, "s" if len(names) > 1 else "",
                             ", ".join("'%s'" % n for n in names))
        if not any_change:
            log.info("reload: no listener or cluster changed")

    def _end_generation(self, gen: Generation) -> None:
        # --parent-shutdown-time-s caps how long an old generation may live.
        for w in gen.workers:
            if w.pid:
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def reopen_logs(self) -> None:
        """SIGUSR1: main reopens --log-path, workers reopen it and their
        access-log files (log rotation)."""
        from envoy_fast import app_log
        app_log.reopen()
        self.send_to_workers({"op": "reopen_logs"})

    # Control channel

    def _send(self, gen: Generation, msg: dict) -> None:
        for w in gen.workers:
            self._send_to(w, msg)

    def _send_to(self, w: WorkerProcess, msg: dict, fds: Optional[List[int]] = None) -> bool:
        """One frame to `w`; `fds` travel with its first byte (SCM_RIGHTS)."""
        if w.control is None:
            return False
        frame = msgspec.msgpack.encode(msg)
        data = len(frame).to_bytes(4, "big") + frame
        try:
            if fds:
                sent = socket.send_fds(w.control, [data], fds)
                w.control.sendall(data[sent:])
            else:
                w.control.sendall(data)
        except OSError:
            return False
        return True

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
