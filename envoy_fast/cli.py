"""`envoy-fast` command line, with Envoy's flags."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import List, Optional

from envoy_fast import __version__

LOG_LEVELS = {
    "trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
    "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR,
    "critical": logging.CRITICAL, "off": logging.CRITICAL + 10,
}


class _EnvoyFormatter(logging.Formatter):
    """Envoy's default log line: [time][pid][level][logger] message."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        level = {"WARNING": "warning", "CRITICAL": "critical"}.get(
            record.levelname, record.levelname.lower())
        name = record.name.split(".")[-1]
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return "[%s.%03d][%d][%s][%s] %s" % (t, int(record.msecs), os.getpid(), level, name, msg)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="envoy-fast",
        description="Envoy-compatible edge proxy with a Cython/epoll data plane.")
    p.add_argument("-c", "--config-path", default="", help="bootstrap config file (YAML or JSON)")
    p.add_argument("--config-yaml", default="", help="inline YAML merged over --config-path")
    p.add_argument("--concurrency", type=int, default=0,
                   help="worker processes (default: number of CPUs)")
    p.add_argument("-l", "--log-level", default="info", choices=sorted(LOG_LEVELS))
    p.add_argument("--mode", default="serve", choices=["serve", "validate"])
    p.add_argument("--drain-time-s", type=float, default=600.0)
    p.add_argument("--parent-shutdown-time-s", type=float, default=900.0)
    p.add_argument("--base-id", type=int, default=0, help="accepted for Envoy compatibility")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


# A stop signal received before the server's event loop runs (config loading,
# forking) is remembered here and honoured as soon as the loop starts.
early_stop_signal = 0


def _remember_signal(sig: int, frame) -> None:
    global early_stop_signal
    early_stop_signal = sig


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of `envoy-fast` and `python -m envoy_fast`."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _remember_signal)
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.version:
        print("envoy-fast version: %s/envoy-v3-api/RELEASE" % __version__)
        return 0
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_EnvoyFormatter())
    root = logging.getLogger("envoy_fast")
    root.handlers[:] = [handler]
    root.setLevel(LOG_LEVELS[args.log_level])
    root.propagate = False
    log = logging.getLogger("envoy_fast.main")

    if not args.config_path and not args.config_yaml:
        print("envoy-fast: one of --config-path or --config-yaml is required", file=sys.stderr)
        return 1
    if args.concurrency < 0:
        print("envoy-fast: --concurrency must be >= 0", file=sys.stderr)
        return 1

    from envoy_fast.config import ConfigError, load_bootstrap
    shown = args.config_path or "<--config-yaml>"
    if args.mode == "validate":
        # Every error, each with its line and a hint, then a summary.
        from envoy_fast.config import validate_bootstrap
        errors = validate_bootstrap(config_path=args.config_path or None,
                                    config_yaml=args.config_yaml or None)
        if errors:
            for error in errors:
                print(error.describe(), file=sys.stderr)
            print("error initializing configuration '%s': %d error%s"
                  % (shown, len(errors), "" if len(errors) == 1 else "s"), file=sys.stderr)
            return 1
        print("configuration '%s' OK" % shown)
        return 0
    try:
        bootstrap = load_bootstrap(config_path=args.config_path or None,
                                   config_yaml=args.config_yaml or None)
    except ConfigError as exc:
        log.critical("error initializing configuration '%s': %s", shown, exc)
        return 1

    from envoy_fast.server import Server, ServerOptions
    options = ServerOptions(
        concurrency=args.concurrency, config_path=args.config_path,
        config_yaml=args.config_yaml, log_level=args.log_level,
        drain_time_s=args.drain_time_s, parent_shutdown_time_s=args.parent_shutdown_time_s,
        base_id=args.base_id, argv=list(argv))
    if early_stop_signal:
        return 0
    server = Server(bootstrap, options)
    try:
        return server.run()
    except RuntimeError as exc:
        log.critical("%s", exc)
        return 1


if __name__ == "__main__":   # pragma: no cover
    sys.exit(main())
