"""`envoy-fast` command line, with Envoy's flags."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import List, Optional

from envoy_fast import __version__, app_log

#: What `--version` prints and /server_info's "version" says.
BUILD_VERSION = "envoy_fast/%s/Clean/RELEASE/none" % __version__

SIGNALS_HELP = """\
signals:
  SIGTERM, SIGINT  drain: let open connections finish (at most --drain-time-s),
                   then exit 0; a second one closes every connection and
                   exits at once
  SIGHUP           reload the configuration (a new generation of workers takes
                   over, the old one drains); an invalid file is logged and
                   counted (server.reload_failure) and the running one kept
  SIGUSR1          reopen --log-path and access-log files (log rotation)
A signal received while starting up is acted on as soon as the server is live.
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or action.default is argparse.SUPPRESS or action.nargs == 0:
            return text
        default = "none" if action.default in (None, "") else "%(default)s"
        return "%s (default: %s)" % (text, default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="envoy-fast", formatter_class=_HelpFormatter, epilog=SIGNALS_HELP,
        description="Envoy-compatible edge proxy with a Cython/epoll data plane.")
    p.add_argument("-c", "--config-path", default="", help="bootstrap config file (YAML, or JSON for .json)")
    p.add_argument("--config-yaml", default="", help="inline YAML merged over --config-path")
    p.add_argument("--concurrency", type=int, default=0,
                   help="worker processes (0: one per CPU)")
    p.add_argument("-l", "--log-level", default="info", choices=sorted(app_log.LEVELS),
                   help="application log level")
    p.add_argument("--component-log-level", default="", metavar="COMPONENT:LEVEL,...",
                   help="per-component log levels, e.g. upstream:debug,admin:warning. "
                   "Components with their own logs: %s (connection and pool are upstream's, "
                   "conn_handler and filter the worker's); Envoy's other component names are "
                   "accepted and have nothing to log" % ", ".join(app_log.COMPONENTS))
    p.add_argument("--log-path", default="", help="write the application log to this file "
                   "(appended; reopened on SIGUSR1) instead of stderr")
    p.add_argument("--log-format", default=None,
                   help="application log line in Envoy's (spdlog) format: %%Y %%m %%d %%T %%e %%f "
                   "(time), %%l %%L (level), %%n (component), %%t %%P (process id), %%v (message), "
                   "%%j (JSON-escaped message), %%_ (newlines escaped) ... (default: \""
                   + app_log.DEFAULT_FORMAT.replace("%", "%%") + "\", or the bootstrap's "
                   "application_log_config)")
    p.add_argument("--mode", default="serve", choices=["serve", "validate"],
                   help="validate: check the config, print every error, bind nothing")
    p.add_argument("--drain-time-s", type=float, default=600.0,
                   help="seconds open connections may take to finish after SIGTERM or a reload")
    p.add_argument("--parent-shutdown-time-s", type=float, default=900.0,
                   help="seconds after a reload at which the old generation is ended")
    p.add_argument("--base-id", type=int, default=0, help="accepted for Envoy compatibility (no hot restart)")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


# Signals received before the server's event loop runs (config loading,
# forking) are remembered here and honoured as soon as the loop starts; they
# never kill a half-started server.
early_signals: List[int] = []


def _remember_signal(sig: int, frame) -> None:
    early_signals.append(sig)


def install_early_signal_handlers() -> None:
    """Defer SIGTERM, SIGINT, SIGHUP and SIGUSR1 until the server is up."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, _remember_signal)


def _check_numbers(args: argparse.Namespace) -> Optional[str]:
    for flag, value in (("--concurrency", args.concurrency), ("--drain-time-s", args.drain_time_s),
                        ("--parent-shutdown-time-s", args.parent_shutdown_time_s),
                        ("--base-id", args.base_id)):
        if not value >= 0:          # also NaN
            return "%s must be >= 0 (got %s)" % (flag, value)
    for flag, value in (("--drain-time-s", args.drain_time_s),
                        ("--parent-shutdown-time-s", args.parent_shutdown_time_s)):
        if value == float("inf"):
            return "%s must be finite" % flag
    return None


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of `envoy-fast` and `python -m envoy_fast`."""
    install_early_signal_handlers()
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.version:
        print("envoy-fast version: %s" % BUILD_VERSION)
        return 0
    if not args.config_path and not args.config_yaml:
        print("envoy-fast: one of --config-path or --config-yaml is required", file=sys.stderr)
        return 1
    problem = _check_numbers(args)
    if problem is None:
        try:
            component_levels = app_log.parse_component_levels(args.component_log_level)
        except ValueError as exc:
            problem = "--component-log-level: %s" % exc
    if problem is not None:
        print("envoy-fast: %s" % problem, file=sys.stderr)
        return 1
    try:
        app_log.setup(args.log_level, args.mode == "serve" and args.log_path or "",
                      args.log_format, component_levels=component_levels)
    except OSError as exc:
        print("envoy-fast: cannot open --log-path '%s': %s" % (args.log_path, exc.strerror),
              file=sys.stderr)
        return 1
    log = logging.getLogger("envoy_fast.main")

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
        bootstrap = load_bootstrap(config_path=args.config_path or None,
                                   config_yaml=args.config_yaml or None)
        conflict = _log_format_conflict(args, bootstrap)
        if conflict:
            print("error initializing configuration '%s': %s" % (shown, conflict), file=sys.stderr)
            return 1
        print("configuration '%s' OK" % shown)
        return 0
    try:
        bootstrap = load_bootstrap(config_path=args.config_path or None,
                                   config_yaml=args.config_yaml or None)
    except ConfigError as exc:
        log.critical("error initializing configuration '%s': %s", shown, exc)
        return 1
    conflict = _log_format_conflict(args, bootstrap)
    if conflict:
        log.critical("error initializing configuration '%s': %s", shown, conflict)
        return 1
    log_format = args.log_format or app_log.DEFAULT_FORMAT
    alc = bootstrap.application_log_config
    if alc is not None and alc.log_format is not None:
        app_log.set_format(alc.log_format.text_format, alc.log_format.json_format)
        log_format = alc.log_format.text_format or log_format

    from envoy_fast.server import Server, ServerOptions
    options = ServerOptions(
        concurrency=args.concurrency, config_path=args.config_path,
        config_yaml=args.config_yaml, log_level=args.log_level,
        drain_time_s=args.drain_time_s, parent_shutdown_time_s=args.parent_shutdown_time_s,
        base_id=args.base_id, argv=list(argv), log_path=args.log_path, log_format=log_format,
        log_format_from_cli=args.log_format is not None,
        component_log_level=args.component_log_level, early_signals=early_signals)
    if _stop_requested():
        log.warning("caught %s during start-up: exiting", _signal_name(_stop_requested()))
        return 0
    server = Server(bootstrap, options)
    try:
        return server.run()
    except RuntimeError as exc:
        log.critical("%s", exc)
        return 1


def _log_format_conflict(args: argparse.Namespace, bootstrap) -> Optional[str]:
    alc = bootstrap.application_log_config
    if args.log_format is not None and alc is not None and alc.log_format is not None:
        # Envoy's own wording.
        return "Only one of ApplicationLogConfig.log_format or CLI option --log-format can be specified."
    return None


def _stop_requested() -> int:
    for sig in early_signals:
        if sig in (signal.SIGTERM, signal.SIGINT):
            return sig
    return 0


def _signal_name(sig: int) -> str:
    return signal.Signals(sig).name


if __name__ == "__main__":   # pragma: no cover
    sys.exit(main())
