"""Admin HTTP listener on asyncio/uvloop in the main process.

A small HTTP/1.1 server: the admin answers a handful of operators' requests,
never the data plane's, so plain asyncio streams are enough. Responses carry
Envoy's admin headers.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Callable, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from envoy_fast import __version__

log = logging.getLogger("envoy_fast.admin")

_TEXT = "text/plain; charset=UTF-8"
_JSON = "application/json"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


class AdminServer:
    """Serves /stats, /ready, /listeners, /server_info, /quitquitquit."""

    def __init__(self, server) -> None:
        self.server = server
        sa = server.bootstrap.admin.address.socket_address
        self.address = sa.address
        self.port = sa.port_value
        self._srv: Optional[asyncio.base_events.Server] = None
        self.routes: Dict[str, Tuple[str, Callable]] = {
            "/stats": ("GET", self.handle_stats),
            "/ready": ("GET", self.handle_ready),
            "/listeners": ("GET", self.handle_listeners),
            "/server_info": ("GET", self.handle_server_info),
            "/quitquitquit": ("POST", self.handle_quit),
        }

    async def start(self, sock=None) -> None:
        """Serve on `sock` (bound by the server before its workers start)."""
        if sock is not None:
            self._srv = await asyncio.start_server(self._client, sock=sock)
        else:
            self._srv = await asyncio.start_server(self._client, self.address, self.port,
                                                   reuse_address=True)
        self.port = self._srv.sockets[0].getsockname()[1]
        log.info("admin address: %s:%d", self.address, self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    await self._send(writer, 400, _TEXT, "bad request\n", close=True)
                    return
                method, target, version = parts
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                status, ctype, body = self.dispatch(method, target)
                await self._send(writer, status, ctype, body, close=close, head=(method == "HEAD"))
                if close:
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

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

    def dispatch(self, method: str, target: str) -> Tuple[int, str, str]:
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        route = self.routes.get(url.path)
        if route is None:
            return 404, _TEXT, "invalid path: %s\n" % url.path
        want, handler = route
        if want == "POST" and method != "POST":
            return 405, _TEXT, "Method %s not allowed, POST required." % method
        return handler(query)

    # Handlers

    def stat_values(self) -> Dict[str, int]:
        values = self.server.stats.values()
        values["server.live"] = 1 if self.server.state == "LIVE" else 0
        values["server.concurrency"] = self.server.concurrency
        values["server.uptime"] = int(self.server.uptime())
        values["server.total_connections"] = sum(
            v for k, v in values.items() if k.startswith("listener.") and k.endswith(".downstream_cx_active"))
        return values

    def handle_stats(self, query) -> Tuple[int, str, str]:
        values = self.stat_values()
        if "filter" in query:
            try:
                rx = re.compile(query["filter"][0])
            except re.error as exc:
                return 400, _TEXT, "Invalid re2 regex: %s\n" % exc
            values = {k: v for k, v in values.items() if rx.search(k)}
        if "usedonly" in query:
            values = {k: v for k, v in values.items() if v}
        if query.get("format", [""])[0] == "json":
            body = json.dumps({"stats": [{"name": k, "value": values[k]} for k in sorted(values)]})
            return 200, _JSON, body
        return 200, _TEXT, "".join("%s: %d\n" % (k, values[k]) for k in sorted(values))

    def handle_ready(self, query) -> Tuple[int, str, str]:
        state = self.server.state
        return (200 if state == "LIVE" else 503), _TEXT, state + "\n"

    def handle_listeners(self, query) -> Tuple[int, str, str]:
        lines = []
        for name, (addr, port) in self.server.listener_ports().items():
            shown = "[%s]" % addr if ":" in addr else addr
            lines.append("%s::%s:%d\n" % (name, shown, port))
        return 200, _TEXT, "".join(lines)

    def handle_server_info(self, query) -> Tuple[int, str, str]:
        opts = self.server.options
        up = int(self.server.uptime())
        info = {
            "version": "envoy_fast/%s" % __version__,
            "state": self.server.state,
            "uptime_current_epoch": "%ds" % up,
            "uptime_all_epochs": "%ds" % up,
            "command_line_options": {
                "concurrency": self.server.concurrency,
                "config_path": opts.config_path,
                "config_yaml": opts.config_yaml,
                "log_level": opts.log_level,
                "drain_time": "%ds" % int(opts.drain_time_s),
                "parent_shutdown_time": "%ds" % int(opts.parent_shutdown_time_s),
                "base_id": str(opts.base_id),
                "mode": "Serve",
            },
        }
        node = self.server.bootstrap.node
        if node is not None:
            info["node"] = {"id": node.id, "cluster": node.cluster}
        return 200, _JSON, json.dumps(info, indent=2)

    def handle_quit(self, query) -> Tuple[int, str, str]:
        asyncio.get_running_loop().call_soon(self.server.shutdown, 0)
        return 200, _TEXT, "OK\n"
