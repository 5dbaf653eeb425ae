"""The wheel installs and runs in a fresh venv with no compiler and no Cython."""
import os
import shutil
import socket
import subprocess
import sys
import venv

import pytest

from helpers import ROOT, echo_server, free_port, simple_proxy_config, wait_for, wait_port

import yaml


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy of the tracked files so no in-place .so/.c leaks in.
    src = out / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if not os.path.exists(os.path.join(ROOT, f)):
            continue
        dst = src / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), dst)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(out / "dist"), str(src)], check=True, capture_output=True, timeout=600)
    wheels = list((out / "dist").glob("envoy_fast-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_has_no_sources(wheel):
    import zipfile
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("envoy_fast/_worker") and n.endswith(".so") for n in names)
    assert not [n for n in names if n.endswith((".c", ".pyx", ".pxd", ".pxi"))]


def test_wheel_runs_in_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    env = dict(os.environ, CC="/bin/false", CXX="/bin/false")   # no compiler
    subprocess.run([py, "-m", "pip", "install", "-q", str(wheel)], check=True, env=env,
                   timeout=600, capture_output=True)
    r = subprocess.run([py, "-c", "import Cython"], capture_output=True)
    assert r.returncode != 0, "Cython must not be needed"
    out = subprocess.run([str(env_dir / "bin" / "envoy-fast"), "--version"], capture_output=True,
                         text=True, check=True, cwd=str(tmp_path))
    assert "0.1.0" in out.stdout
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(yaml.safe_dump(simple_proxy_config(up.port, lp, ap)))
        proc = subprocess.Popen([str(env_dir / "bin" / "envoy-fast"), "-c", str(cfg),
                                 "--concurrency", "1"], cwd=str(tmp_path),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(lp)
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as c:
                c.sendall(b"from the wheel")
                assert c.recv(100) == b"from the wheel"
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
