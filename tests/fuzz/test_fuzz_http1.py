"""The HTTP/1 codec fuzz target (fuzz_http1.py) for a bounded time: no
crash, no hang, no split-dependent result. Needs atheris (the [test]
extra); without it the test skips, or fails under CI=true."""
import os
import re
import subprocess
import sys

from helpers import missing_peer

TARGET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_http1.py")


def test_fuzz_http1_for_twenty_seconds(tmp_path):
    try:
        import atheris  # noqa: F401
    except ImportError:
        missing_peer("atheris", "pip install atheris")
    proc = subprocess.run(
        [sys.executable, TARGET, "-max_total_time=20", "-timeout=10", "-rss_limit_mb=2048",
         "-artifact_prefix=%s/" % tmp_path],
        capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    runs = re.search(r"Done (\d+) runs in (\d+) second", out)
    assert runs and int(runs.group(1)) > 10000, out[-2000:]
