"""python -m envoy_fast"""
import signal
import sys


def _remember(sig, frame):
    early.append(sig)


# As early as possible: a stop, reload or reopen signal during start-up is
# acted on once the server is up, never kills it half-started.
early = []
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(_sig, _remember)

from envoy_fast import cli  # noqa: E402

cli.early_signals = early      # the same list from here on
sys.exit(cli.main())
