"""Admin HTTP listener on asyncio/uvloop in the main process.

A small HTTP/1.1 server: the admin answers a handful of operators' requests,
never the data plane's, so plain asyncio streams are enough. Every endpoint
answers in Envoy 1.40's format (rendering lives in ``render.py``); responses
carry Envoy's admin headers, and mutating endpoints want POST.

The admin shares the main process with worker supervision and signal
handling, so nothing it serves may hold the event loop: requests are read
with bounds on size and time (``http.py``), user regexes are RE2, and the
endpoints whose output grows with the config render in one admin thread
from a snapshot taken on the loop (see ``Snapshot``).

Histograms are shown as Envoy shows them: computed at each stats flush
(``stats_flush_interval``, default 5 s, or at each stats request with
``stats_flush_on_admin: true``), with the last interval's and the cumulative
quantiles. A histogram with no sample at the last flush reads "No recorded
values".

``server.*`` stats: Envoy's ``live``, ``state``, ``uptime``, ``concurrency``,
``total_connections``, ``memory_allocated``, ``memory_heap_size`` and
``memory_physical_size`` (the memory gauges are the resident set of the main
process plus every worker, as envoy_fast has no tcmalloc), plus two of
envoy_fast's own: ``server.worker_restarts`` (counter: workers that died and
were started again) and ``server.draining_generations`` (gauge: worker
generations still draining after reloads).
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from envoy_fast import __version__, regex
from envoy_fast.admin import config_doc, config_dump, http, render

log = logging.getLogger("envoy_fast.admin")

TEXT = "text/plain; charset=UTF-8"
JSON = "application/json"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Payload Too Large", 414: "URI Too Long",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable"}
#: After an error answer, how long (and how much) the client's further bytes
#: are read and dropped before the close, so the answer is not lost to a reset.
_LINGER_S = 1.0
_LINGER_BYTES = 1 << 20

#: Envoy's default stats flush interval (Bootstrap.stats_flush_interval).
DEFAULT_FLUSH_INTERVAL_S = 5.0
# server.state values (envoy.admin.v3.ServerInfo.State).
_STATE_NUMBERS = {"LIVE": 0, "DRAINING": 1, "PRE_INITIALIZING": 2, "INITIALIZING": 3}
_WORKER_STAT = re.compile(r"^(listener\..*)\.worker_\d+\.([^.]+)$")

Response = Tuple[int, str, str]


class Endpoint:
    """An admin path: `handler(query)`, or with `snapshot` set
    `handler(query, snapshot)` run off the event loop."""

    def __init__(self, handler: Callable, help: str, post: bool = False,
                 params: Tuple[Tuple[str, str], ...] = (), snapshot: bool = False) -> None:
        self.handler = handler
        self.help = help
        self.post = post
        self.params = params
        self.snapshot = snapshot


class Snapshot:
    """What a read-only endpoint shows, taken on the event loop in one go (no
    await between): the stats store with copies of its name tables (its rows
    are read in the admin thread under the store's lock), the bootstrap and
    the server's values. Rendering then runs in the admin thread while main
    goes on."""

    def __init__(self, admin: "AdminServer") -> None:
        server = admin.server
        self.stats = server.stats.snapshot()
        self.bootstrap = server.bootstrap
        self.server_gauges = admin.server_gauges()
        wr = getattr(server, "worker_restarts", None)
        self.worker_restarts: Optional[int] = None if wr is None else int(
            wr() if callable(wr) else wr)
        self.listeners = [(name, addr, port)
                          for name, (addr, port) in server.listener_ports().items()]


class RenderThread:
    """One daemon thread that runs the admin's renders in order. A daemon, so
    that a render in progress never delays the process's exit (the thread of
    a ThreadPoolExecutor is joined at exit)."""

    def __init__(self) -> None:
        self._jobs: "queue.SimpleQueue" = queue.SimpleQueue()
        threading.Thread(target=self._run, name="admin-render", daemon=True).start()

    def submit(self, fn: Callable, *args: Any) -> "asyncio.Future":
        """Run fn(*args) in the thread; the future resolves on the caller's loop."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._jobs.put((loop, fut, fn, args))
        return fut

    def _run(self) -> None:
        while True:
            loop, fut, fn, args = self._jobs.get()
            try:
                res, exc = fn(*args), None
            except BaseException as e:                 # handed to the awaiting coroutine
                res, exc = None, e
            try:
                loop.call_soon_threadsafe(_settle, fut, res, exc)
            except RuntimeError:                        # the loop has closed
                pass


def _settle(fut: "asyncio.Future", res: Any, exc: Optional[BaseException]) -> None:
    if fut.cancelled():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(res)


class AdminServer:
    """Envoy's admin endpoints for a running Server."""

    def __init__(self, server) -> None:
        self.server = server
        sa = server.bootstrap.admin.address.socket_address
        self.address = sa.address
        self.port = sa.port_value
        self._srv: Optional[asyncio.base_events.Server] = None
        self._flush_task: Optional[asyncio.Task] = None
        # One thread renders and flushes histograms, in order: the histogram
        # state below is touched only there (or, without a loop, inline).
        self._executor: Optional[RenderThread] = None
        self._snapshots: Optional[asyncio.Semaphore] = None
        self._hist_prev: Dict[str, object] = {}
        self._hist_views: Dict[str, render.HistView] = {}
        self._bootstrap = None
        self._sources = config_doc.Sources(None)
        self._last_updated = render.timestamp(getattr(server, "started", time.time()))
        filt = ("filter", "Regular expression (Google re2) for filtering stats")
        used = ("usedonly", "Only include stats that have been written by system since restart")
        self.endpoints: Dict[str, Endpoint] = {
            "/clusters": Endpoint(self.handle_clusters, "upstream cluster status", params=(
                ("filter", "Regular expression (Google re2) for filtering clusters by name"),
                ("format", "File format to use; One of (text, json)")), snapshot=True),
            "/config_dump": Endpoint(self.handle_config_dump, "dump current Envoy configs",
                                     params=config_dump.PARAMS, snapshot=True),
            "/drain_listeners": Endpoint(self.handle_drain_listeners, "drain listeners", post=True,
                                         params=(("graceful", "When draining listeners, enter a "
                                                  "graceful drain period prior to closing "
                                                  "listeners. This behaviour and duration is "
                                                  "configurable via server options or CLI"),)),
            "/healthcheck/fail": Endpoint(self.handle_healthcheck_fail,
                                          "cause the server to fail health checks", post=True),
            "/healthcheck/ok": Endpoint(self.handle_healthcheck_ok,
                                        "cause the server to pass health checks", post=True),
            "/help": Endpoint(self.handle_help, "print out list of admin commands"),
            "/listeners": Endpoint(self.handle_listeners, "print listener info", params=(
                ("format", "File format to use; One of (text, json)"),), snapshot=True),
            "/memory": Endpoint(self.handle_memory, "print current allocation/heap usage"),
            "/quitquitquit": Endpoint(self.handle_quit, "exit the server", post=True),
            "/ready": Endpoint(self.handle_ready,
                               "print server state, return 200 if LIVE, otherwise return 503"),
            "/server_info": Endpoint(self.handle_server_info,
                                     "print server version/status information"),
            "/stats": Endpoint(self.handle_stats, "print server stats", params=(
                used, filt, ("invert_filter", "Invert the filter regex"),
                ("format", "Format to use; One of (text, json, prometheus)"),
                ("type", "Stat types to include.; One of (All, Counters, Histograms, Gauges, "
                         "TextReadouts)")), snapshot=True),
            "/stats/prometheus": Endpoint(self.handle_prometheus,
                                          "print server stats in prometheus format", params=(
                used, filt, ("invert_filter", "Invert the filter regex")), snapshot=True),
        }

    # ----------------------------------------------------------------- serving

    async def start(self, sock=None) -> None:
        """Serve on `sock` (bound by the server before its workers start)."""
        self._executor = RenderThread()
        self._snapshots = asyncio.Semaphore(1)
        if sock is not None:
            self._srv = await asyncio.start_server(self._client, sock=sock,
                                                   limit=http.READ_LIMIT)
        else:
            self._srv = await asyncio.start_server(self._client, self.address, self.port,
                                                   reuse_address=True, limit=http.READ_LIMIT)
        self.port = self._srv.sockets[0].getsockname()[1]
        self._flush_task = asyncio.get_running_loop().create_task(self._flush_loop())
        log.info("admin address: %s:%d", self.address, self.port)

    def close(self) -> None:
        """Stop listening and flushing (open admin connections are still served)."""
        if self._flush_task is not None:
            self._flush_task.cancel()
            self._flush_task = None
        if self._srv is not None:
            self._srv.close()
            self._srv = None
        # The render thread stays: requests on open connections still render
        # there, and as a daemon it never delays the exit.
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A connection that never sends a request is held no longer than a
        # slow request head; one that is idle between requests, longer.
        idle = http.HEADER_TIMEOUT_S
        try:
            while True:
                try:
                    req = await http.read_request(reader, idle_timeout=idle)
                    idle = http.IDLE_TIMEOUT_S
                except http.HttpError as err:
                    await self._refuse(reader, writer, err)
                    return
                if req is None:
                    return
                try:
                    res = await self.dispatch_async(req.method, req.target)
                except Exception:                       # a bug: answer, keep serving
                    log.exception("admin %s %s failed", req.method, req.target)
                    res = (500, TEXT, "internal error\n")
                status, ctype, body = res[:3]
                await self._send(writer, status, ctype, body, close=req.close,
                                 head=(req.method == "HEAD"))
                if len(res) > 3:                        # an action after the answer is out
                    res[3]()
                if req.close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      err: http.HttpError) -> None:
        """Answer a request the admin will not serve, as Envoy's codec does,
        then close; what the client still sends is read and dropped (bounded)
        so that the close does not reset the answer away."""
        body = err.body.encode()
        writer.write(b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\ncontent-type: text/plain\r\n"
                     b"connection: close\r\n\r\n%s"
                     % (err.status, _REASONS.get(err.status, "").encode(), len(body), body))
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _LINGER_S
        dropped = 0
        try:
            while dropped < _LINGER_BYTES:
                left = deadline - loop.time()
                if left <= 0:
                    break
                data = await asyncio.wait_for(reader.read(65536), left)
                if not data:
                    break
                dropped += len(data)
        except (asyncio.TimeoutError, ConnectionError):
            pass

    async def _send(self, writer, status: int, ctype: str, body: str, close: bool = False,
                    head: bool = False) -> None:
        data = body.encode()
        hdr = ("HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncache-control: no-cache, max-age=0\r\n"
               "x-content-type-options: nosniff\r\ncontent-length: %d\r\n"
               % (status, _REASONS.get(status, ""), ctype, len(data)))
        if close:
            hdr += "connection: close\r\n"
        writer.write(hdr.encode() + b"\r\n" + (b"" if head else data))
        await writer.drain()

    def _route(self, method: str, target: str):
        """(endpoint, query) or an answer (404, 405)."""
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        ep = self.endpoints.get(url.path)
        if ep is None:
            return None, (404, TEXT, "invalid path. " + self.help_text())
        if ep.post and method != "POST":
            return None, (405, TEXT, "Method %s not allowed, POST required." % method)
        return ep, query

    def dispatch(self, method: str, target: str) -> Response:
        """Answer a request here and now (the read-only endpoints render inline)."""
        ep, query = self._route(method, target)
        if ep is None:
            return query
        if ep.snapshot:
            snap = Snapshot(self)
            self._track_bootstrap(snap.bootstrap)
            return ep.handler(query, snap)
        return ep.handler(query)

    async def dispatch_async(self, method: str, target: str) -> Response:
        """Answer a request; the read-only endpoints take a snapshot here and
        render in the admin thread, so a slow one (thousands of listeners)
        never holds up worker supervision, signals or other admin requests."""
        ep, query = self._route(method, target)
        if ep is None:
            return query
        if not ep.snapshot or self._executor is None:
            return self.dispatch(method, target)
        return await self._offloop(self._render, ep, query)

    async def _offloop(self, fn, *args):
        # One render at a time; queued requests wait here, holding nothing.
        assert self._snapshots is not None
        async with self._snapshots:
            snap = Snapshot(self)
            return await self._executor.submit(fn, snap, *args)

    def _render(self, snap: Snapshot, ep: Endpoint, query) -> Response:
        self._track_bootstrap(snap.bootstrap)
        return ep.handler(query, snap)

    def help_text(self) -> str:
        out = ["admin commands are:\n"]
        for path in sorted(self.endpoints):
            ep = self.endpoints[path]
            out.append("  %s%s: %s\n" % (path, " (POST)" if ep.post else "", ep.help))
            out += ["      %s: %s\n" % p for p in ep.params]
        return "".join(out)

    # --------------------------------------------------------------- histograms

    async def _flush_loop(self) -> None:
        while True:
            try:
                await self._offloop(self._flush, None)
            except asyncio.CancelledError:
                raise
            except Exception:                           # pragma: no cover
                log.exception("stats flush failed")
            await asyncio.sleep(self.flush_interval())

    def _flush(self, snap: Snapshot, _unused) -> None:
        self._track_bootstrap(snap.bootstrap)
        self.flush_histograms(snap.stats)

    def flush_interval(self) -> float:
        bs = self._bootstrap or self.server.bootstrap
        interval = bs.stats_flush_interval or DEFAULT_FLUSH_INTERVAL_S
        return max(0.01, float(interval))

    def flush_histograms(self, store=None) -> None:
        """Envoy's stats flush for histograms: the interval since the last
        flush and the cumulative statistics, as the admin shows them."""
        from envoy_fast.stats.store import BUCKET_BOUNDS
        current = (store or self.server.stats).histograms()
        views = {}
        for name, h in current.items():
            prev = self._hist_prev.get(name)
            if prev is not None:
                interval = [max(0, a - b) for a, b in zip(h.counts, prev.counts)]
            else:
                interval = list(h.counts)
            cumulative = render.circll_bins(h.counts, BUCKET_BOUNDS)
            old = self._hist_views.get(name)
            used = bool(cumulative) or (old is not None and old.used)
            views[name] = render.HistView(
                render.hist_stats(render.circll_bins(interval, BUCKET_BOUNDS)),
                render.hist_stats(cumulative), used)
        self._hist_prev = current
        self._hist_views = views

    # --------------------------------------------------------------- the stats

    def _track_bootstrap(self, bs) -> None:
        """Re-read the config sources when the server's bootstrap changed (a reload)."""
        if bs is self._bootstrap:
            return
        if self._bootstrap is not None:
            self._last_updated = render.timestamp(time.time())
        self._bootstrap = bs
        opts = self.server.options
        self._sources = config_doc.read_sources(getattr(opts, "config_path", None) or None,
                                                getattr(opts, "config_yaml", None) or None)

    def memory_bytes(self) -> int:
        """Resident bytes of the main process and its workers."""
        info = getattr(self.server, "memory_info", None)
        if callable(info):
            try:
                return sum(int(v) for v in info().values() if isinstance(v, (int, float)))
            except Exception:                           # pragma: no cover
                log.exception("memory_info failed")
        pids = [os.getpid()]
        try:
            with open("/proc/self/task/%d/children" % os.getpid()) as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        page = os.sysconf("SC_PAGE_SIZE")
        total = 0
        for pid in pids:
            try:
                with open("/proc/%d/statm" % pid) as f:
                    total += int(f.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                pass
        return total

    def server_state(self) -> str:
        return self.server.state

    def _live(self) -> bool:
        live = getattr(self.server, "live", None)
        if isinstance(live, bool):
            return live
        return self.server.state == "LIVE"

    def _state_number(self) -> int:
        """server.state: the init state; a failed health check alone keeps 0 (LIVE)."""
        s = self.server
        if getattr(s, "shutting_down", False) or getattr(s, "draining", False):
            return 1
        if s.state == "DRAINING" and getattr(s, "healthcheck_failed", False):
            return 0
        return _STATE_NUMBERS.get(s.state, 0)

    def server_gauges(self) -> Dict[str, int]:
        """Envoy's server.* gauges, and envoy_fast's draining_generations."""
        mem = self.memory_bytes()
        out = {
            "server.concurrency": int(self.server.concurrency),
            "server.live": 1 if self._live() else 0,
            "server.state": self._state_number(),
            "server.uptime": int(self.server.uptime()),
            "server.total_connections": 0,          # summed from the stats at render
            "server.memory_allocated": mem,
            "server.memory_heap_size": mem,
            "server.memory_physical_size": mem,
        }
        dg = getattr(self.server, "draining_generations", None)
        if dg is not None:
            out["server.draining_generations"] = int(dg() if callable(dg) else dg)
        return out

    def stat_set(self, snap: Snapshot) -> render.StatSet:
        store = snap.stats
        values = store.values()
        entry_kinds = store.kinds()
        kinds: Dict[str, str] = {}
        for name in values:
            kind = entry_kinds.get(name)
            if kind is None:
                m = _WORKER_STAT.match(name)
                kind = entry_kinds.get("%s.%s" % m.groups(), "counter") if m else "counter"
            kinds[name] = str(kind)
        server_gauges = dict(snap.server_gauges)
        # Listener totals only: the per-worker copies are not layout entries.
        server_gauges["server.total_connections"] = sum(
            values.get(n, 0) for n in entry_kinds
            if n.startswith("listener.") and n.endswith(".downstream_cx_active"))
        for name, v in server_gauges.items():
            values[name] = v
            kinds[name] = "gauge"
        if snap.worker_restarts is not None:
            values["server.worker_restarts"] = snap.worker_restarts
            kinds["server.worker_restarts"] = "counter"
        hist_views = self._hist_views
        dynamic = store.layout.dynamic      # made on first use: absent until then
        hists = {name: hist_views.get(name, render.UNUSED_HIST)
                 for name, kind in entry_kinds.items()
                 if kind == "histogram" and (name in hist_views or name not in dynamic)}
        used = render.gauges_in_use(values, kinds, always=server_gauges)
        return render.StatSet(values, kinds, hists, used)

    def _stats_query(self, query) -> render.StatsQuery:
        rx = None
        if "filter" in query and query["filter"][0] != "":
            rx = regex.compile(query["filter"][0])
        kind = query.get("type", ["All"])[0].lower() or "all"
        if kind not in ("all", "counters", "gauges", "histograms", "textreadouts"):
            raise ValueError("usage: /stats?type=(All|Counters|Gauges|Histograms|TextReadouts)\n")
        return render.StatsQuery(rx, "usedonly" in query, kind, "invert_filter" in query)

    def _stats_request(self, query, snap: Snapshot):
        if snap.bootstrap.stats_flush_on_admin:
            self.flush_histograms(snap.stats)
        try:
            q = self._stats_query(query)
        except regex.RegexError as exc:
            return None, (400, TEXT, "Invalid re2 regex: %s" % exc)
        except ValueError as exc:
            return None, (400, TEXT, str(exc))
        return q, None

    # ------------------------------------------------------------- handlers

    def handle_stats(self, query, snap: Snapshot) -> Response:
        fmt = query.get("format", ["text"])[0] or "text"
        if fmt not in render.STATS_FORMATS or fmt in ("html", "active-html"):
            return 400, TEXT, render.STATS_USAGE
        if fmt == "prometheus":
            return self.handle_prometheus(query, snap)
        q, err = self._stats_request(query, snap)
        if err is not None:
            return err
        stats = self.stat_set(snap)
        if fmt == "json":
            return 200, JSON, render.render_stats_json(stats, q)
        return 200, TEXT, render.render_stats_text(stats, q)

    def handle_prometheus(self, query, snap: Snapshot) -> Response:
        q, err = self._stats_request(query, snap)
        if err is not None:
            return err
        return 200, TEXT, render.render_prometheus(self.stat_set(snap), q)

    def cluster_views(self, snap: Snapshot) -> List[render.ClusterView]:
        from envoy_fast.config import types as t
        host_stats = snap.stats.host_values()
        out = []
        for c in snap.bootstrap.static_resources.clusters:
            default = c.thresholds() if hasattr(c, "thresholds") else t.Thresholds()
            high = t.Thresholds(priority="HIGH")
            if c.circuit_breakers is not None:
                high = next((th for th in c.circuit_breakers.thresholds if th.priority == "HIGH"),
                            high)
            hosts = []
            stats = host_stats.get(c.name, {})
            if c.load_assignment is not None:
                for loc in c.load_assignment.endpoints:
                    for ep in loc.lb_endpoints:
                        sa = ep.endpoint.address.socket_address
                        hv = render.HostView(sa.address, sa.port_value, ep.endpoint.hostname,
                                             ep.load_balancing_weight, loc.priority,
                                             ep.health_status, {})
                        hosts.append(hv._replace(stats=stats.get(hv.address_port, {})))
            out.append(render.ClusterView(
                c.name, c.alt_stat_name or c.name,
                {k: getattr(default, k) for k in render.THRESHOLD_KEYS},
                {k: getattr(high, k) for k in render.THRESHOLD_KEYS}, hosts))
        return out

    def handle_clusters(self, query, snap: Snapshot) -> Response:
        rx = None
        if "filter" in query and query["filter"][0]:
            try:
                rx = regex.compile(query["filter"][0])
            except regex.RegexError:
                return 400, TEXT, "Invalid re2 regex"
        clusters = self.cluster_views(snap)
        if rx is not None:
            clusters = [c for c in clusters if rx.search(c.name)]
        if query.get("format", ["text"])[0] == "json":
            return 200, JSON, render.envoy_json(render.clusters_json(clusters))
        return 200, TEXT, render.render_clusters_text(clusters)

    def handle_config_dump(self, query, snap: Snapshot) -> Response:
        bs = config_doc.bootstrap_json(snap.bootstrap, self._sources.doc, __version__)
        return config_dump.handle(query, bs, self._last_updated)

    def handle_listeners(self, query, snap: Snapshot) -> Response:
        if query.get("format", ["text"])[0] == "json":
            return 200, JSON, render.envoy_json(render.listeners_json(snap.listeners))
        return 200, TEXT, render.render_listeners_text(snap.listeners)

    def handle_server_info(self, query) -> Response:
        node = self.server.bootstrap.node
        node_doc = None
        if node is not None:
            node_doc = {"id": node.id, "cluster": node.cluster}
        info = render.server_info(version=__version__, state=self.server_state(),
                                  uptime_s=self.server.uptime(), options=self.server.options,
                                  concurrency=self.server.concurrency, node=node_doc)
        return 200, JSON, render.envoy_json(info)

    def handle_ready(self, query) -> Response:
        state = self.server_state()
        return (200 if state == "LIVE" else 503), TEXT, state + "\n"

    def handle_memory(self, query) -> Response:
        mem = self.memory_bytes()
        return 200, JSON, render.envoy_json(render.memory_json(mem, mem, mem))

    def handle_help(self, query) -> Response:
        return 200, TEXT, self.help_text()

    def handle_healthcheck_fail(self, query) -> Response:
        fail = getattr(self.server, "healthcheck_fail", None)
        if callable(fail):
            fail()
        elif self.server.state == "LIVE":
            self.server.state = "DRAINING"
        return 200, TEXT, "OK\n"

    def handle_healthcheck_ok(self, query) -> Response:
        ok = getattr(self.server, "healthcheck_ok", None)
        if callable(ok):
            ok()
        elif self.server.state == "DRAINING" and not getattr(self.server, "shutting_down", False):
            self.server.state = "LIVE"
        return 200, TEXT, "OK\n"

    def handle_drain_listeners(self, query) -> Response:
        drain = getattr(self.server, "drain_listeners", None)
        if callable(drain):
            drain(graceful="graceful" in query)
        return 200, TEXT, "OK\n"

    def handle_quit(self, query):
        return 200, TEXT, "OK\n", lambda: self.server.shutdown(0)
