"""bench/run.py finds the proxy a newcomer has, and a run with a missing row fails."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, require_peer

BENCH = Path(ROOT) / "bench" / "run.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_unbuilt_source_tree_runs_the_installed_command(tmp_path, monkeypatch):
    # A checkout without a compiled extension must not shadow the installed
    # package (it would fail with "cannot import name '_worker'").
    bench = _bench_module()
    (tmp_path / "envoy_fast").mkdir()
    (tmp_path / "envoy_fast" / "__main__.py").write_text("")
    monkeypatch.setattr(bench, "REPO", tmp_path)
    monkeypatch.delenv("ENVOY_FAST_CMD", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    argv, env, note = bench.envoy_fast_argv()
    assert str(tmp_path) not in env.get("PYTHONPATH", "")
    installed = os.access(Path(sys.executable).parent / "envoy-fast", os.X_OK)
    if not installed:
        # Nothing to run: say how to get it instead of failing at start-up.
        assert argv is None and "pip install ." in note
        return
    assert argv is not None and os.path.basename(argv[0]) == "envoy-fast", note
    # The installed command really runs.
    out = subprocess.run(argv + ["--version"], env=env, cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "envoy-fast version" in out.stdout, out.stderr


def test_built_source_tree_runs_from_source(tmp_path, monkeypatch):
    bench = _bench_module()
    (tmp_path / "envoy_fast").mkdir()
    (tmp_path / "envoy_fast" / "_worker.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    monkeypatch.setattr(bench, "REPO", tmp_path)
    monkeypatch.delenv("ENVOY_FAST_CMD", raising=False)
    argv, env, note = bench.envoy_fast_argv()
    assert argv == [sys.executable, "-m", "envoy_fast"]
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path)


def test_a_proxy_that_does_not_run_fails_the_bench(tmp_path):
    env = dict(os.environ, ENVOY_FAST_CMD="/bin/false")
    r = subprocess.run([sys.executable, str(BENCH), "--proxies", "envoy_fast", "--workloads",
                        "small_keepalive", "--duration", "1", "--warmup", "0", "--no-install",
                        "--start-timeout", "3", "--out", str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "FAILED: no result for envoy_fast c=1" in r.stdout + r.stderr


def _bench_envoy_fast_from_source(tmp_path, workloads, *extra):
    """Run bench/run.py on envoy_fast from this tree (1 s, no warm-up): it
    must succeed; its output and result rows."""
    require_peer("wrk")
    require_peer("nginx")
    env = dict(os.environ, ENVOY_FAST_CMD="%s -m envoy_fast" % sys.executable,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out_dir = tmp_path / "out"
    r = subprocess.run([sys.executable, str(BENCH), "--proxies", "envoy_fast", "--workloads", workloads,
                        "--duration", "1", "--warmup", "0", "--no-install", "--out", str(out_dir), *extra],
                       env=env, capture_output=True, text=True, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    return out, json.loads((out_dir / "results.json").read_text())["results"]


def test_envoy_fast_l7_row_is_measured(tmp_path):
    """envoy_fast serves the L7 bench config: its http_small_keepalive row
    has a result with no errors, and nothing is reported failed."""
    out, rows = _bench_envoy_fast_from_source(tmp_path, "http_small_keepalive")
    assert "FAILED" not in out, out
    assert [(x["proxy"], x["workload"], x["status"]) for x in rows] == \
        [("envoy_fast", "http_small_keepalive", "ok")], rows
    assert rows[0]["result"]["requests"] > 0 and rows[0]["result"]["errors"] == 0, rows[0]["result"]


def test_layers_pick_the_workloads():
    bench = _bench_module()
    a = bench.parse_args(["--layers", "l7"])
    assert a.workload_list == ["http_small_keepalive", "http_64k", "http_post_1m", "http_new_conn"]
    a = bench.parse_args(["--layers", "l4"])
    assert a.workload_list == ["small_keepalive", "new_conn", "1mb"]
    a = bench.parse_args(["--workloads", "1mb,http_64k", "--layers", "l4,l7"])
    assert [bench.layer(w) for w in a.workload_list] == ["l4", "l7"]


def test_interleaved_passes_merge_into_one_row_per_workload(tmp_path):
    """--interleave takes the --repeat runs in passes over the proxies: one
    row per workload at the end, with every pass's run, in pass order."""
    out, rows = _bench_envoy_fast_from_source(tmp_path, "http_small_keepalive,http_new_conn",
                                              "--repeat", "2", "--interleave")
    assert "pass 2/2" in out, out
    assert [(x["proxy"], x["workload"], x["status"], len(x["runs"])) for x in rows] == \
        [("envoy_fast", "http_small_keepalive", "ok", 2), ("envoy_fast", "http_new_conn", "ok", 2)], rows
    for row in rows:
        assert row["result"] in row["runs"] and row["result"]["errors"] == 0


def test_merge_passes_keeps_a_pass_that_worked():
    bench = _bench_module()
    ok = {"rps": 10.0}
    rows = bench.merge_passes([
        {"proxy": "p", "concurrency": 1, "workload": "w", "status": "error", "error": "x", "runs": []},
        {"proxy": "p", "concurrency": 1, "workload": "w", "status": "ok", "error": None, "runs": [ok],
         "result": ok},
    ])
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["result"] is ok
