"""validate_bootstrap and `--mode validate`: every error, with its line and a hint."""
import json
import pickle
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from envoy_fast.config import ConfigError, load_bootstrap, validate_bootstrap
from helpers import ROOT
from test_config import BASE, ERRORS, FULL_EXAMPLE, base, write

TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

# Line numbers below are those of this text (line 1 is "static_resources:").
CONFIG = textwrap.dedent(
    f"""\
    static_resources:
      listeners:
      - name: l1
        address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
        bogus_field: 1
        filter_chains:
        - filters:
          - name: tcp
            typed_config:
              "@type": {TCP_PROXY}
              stat_prefix: one
              cluster: c1
      - name: l2
        address: {{socket_address: {{address: 127.0.0.1, port_value: 10001}}}}
        filter_chains:
        - filters:
          - name: tcp
            typed_config:
              "@type": {TCP_PROXY}
              stat_prefix: two
              cluster: c1
              idle_timeout: 500ms
      clusters:
      - name: c1
        conect_timeout: 0.25s
      - name: c2
        lb_policy: least-request
      - name: c3
        connect_timeout: 5
    """
)


def errors_of(tmp_path, doc, name="envoy.yaml", config_yaml=None):
    return validate_bootstrap(write(tmp_path, doc, name), config_yaml=config_yaml)


def by_path(errors):
    return {e.path: e for e in errors}


class TestEveryError:
    def test_all_errors_with_lines(self, tmp_path):
        errors = errors_of(tmp_path, CONFIG)
        got = [(e.path, e.line) for e in errors]
        assert got == [
            ("static_resources.listeners[0].bogus_field", 5),
            ("static_resources.listeners[1].filter_chains[0].filters[0].typed_config.idle_timeout", 22),
            ("static_resources.clusters[0].conect_timeout", 25),
            ("static_resources.clusters[1].lb_policy", 27),
            ("static_resources.clusters[2].connect_timeout", 29),
        ]
        assert all(e.source == "file" and e.column for e in errors)
        assert by_path(errors)["static_resources.clusters[0].conect_timeout"].column == 5

    def test_load_bootstrap_still_raises_the_first(self, tmp_path):
        with pytest.raises(ConfigError) as e:
            load_bootstrap(write(tmp_path, CONFIG))
        assert e.value.path == "static_resources.listeners[0].bogus_field"
        assert str(e.value) == f"{e.value.path}: {e.value.message}"
        assert e.value.line == 5  # and it has a line too

    def test_load_bootstrap_raises_the_first_error_of_the_earliest_step(self, tmp_path):
        # One validator: load_bootstrap raises one of validate_bootstrap's
        # errors -- a type error before a cross-field one placed earlier in
        # the file, as the cross-field checks run on what conversion built.
        doc = base()
        doc["static_resources"]["clusters"][0]["type"] = "STRICT_DNS"  # clusters come first in the file
        doc["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 70000
        config = write(tmp_path, doc)
        errors = validate_bootstrap(config)
        assert [e.path for e in errors] == [
            "static_resources.clusters[0].type",
            "static_resources.listeners[0].address.socket_address.port_value",
        ]
        with pytest.raises(ConfigError) as first:
            load_bootstrap(config)
        assert (first.value.path, first.value.message, first.value.line, first.value.hint) == (
            errors[1].path, errors[1].message, errors[1].line, errors[1].hint)

    def test_every_missing_field_of_a_message(self, tmp_path):
        doc = base()
        doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0] = {}
        errors = errors_of(tmp_path, doc)
        prefix = "static_resources.listeners[0].filter_chains[0].filters[0]"
        assert [(e.path, e.message) for e in errors] == [
            (f"{prefix}.name", "missing required field"),
            (f"{prefix}.typed_config", "missing required field"),
        ]

    def test_every_bad_item_of_a_list(self, tmp_path):
        # The first item that cannot be built does not hide the next ones.
        doc = base()
        endpoints = doc["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        endpoints.append(json.loads(json.dumps(endpoints[0])))
        for item in endpoints:
            item["endpoint"]["address"]["socket_address"]["port_value"] = "x"
            del item["endpoint"]["address"]["socket_address"]["address"]
        errors = errors_of(tmp_path, doc)
        prefix = "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints"
        assert [e.path for e in errors] == [
            f"{prefix}[{i}].endpoint.address.socket_address.{name}"
            for i in (0, 1) for name in ("address", "port_value")
        ], [e.describe() for e in errors]

    def test_many_bad_clusters_each_reported_quickly(self, tmp_path):
        # Each error costs a conversion of its own cluster, not of the bootstrap.
        doc = base()
        template = doc["static_resources"]["clusters"][0]
        clusters = doc["static_resources"]["clusters"] = []
        for i in range(2000):
            c = json.loads(json.dumps(template))
            c["name"] = f"c{i}"
            c["per_connection_buffer_limit_bytes"] = -1
            c["connect_timeout"] = {"seconds": "x"} if i % 2 else c.get("connect_timeout", "1s")
            clusters.append(c)
        doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["cluster"] = "c0"
        doc["static_resources"]["listeners"] = doc["static_resources"]["listeners"][:1]
        config = write(tmp_path, doc)
        start = time.monotonic()
        errors = validate_bootstrap(config)
        elapsed = time.monotonic() - start
        paths = [e.path for e in errors]
        assert len(paths) == 3000, paths[:5]
        assert paths[:3] == [
            "static_resources.clusters[0].per_connection_buffer_limit_bytes",
            "static_resources.clusters[1].connect_timeout.seconds",
            "static_resources.clusters[1].per_connection_buffer_limit_bytes",
        ] or paths[:3] == [
            "static_resources.clusters[0].per_connection_buffer_limit_bytes",
            "static_resources.clusters[1].per_connection_buffer_limit_bytes",
            "static_resources.clusters[1].connect_timeout.seconds",
        ]
        assert elapsed < 30, elapsed  # generous: the machine is shared

    def test_two_bad_clusters_two_errors(self, tmp_path):
        doc = base()
        doc["static_resources"]["clusters"][0]["type"] = "STRICT_DNS"
        doc["static_resources"]["clusters"][1]["connect_timeout"] = "1m"
        errors = errors_of(tmp_path, doc)
        assert [e.path for e in errors] == [
            "static_resources.clusters[0].type",
            "static_resources.clusters[1].connect_timeout",
        ]

    def test_unknown_field_and_bad_duration_in_different_listeners(self, tmp_path):
        doc = base()
        second = json.loads(json.dumps(doc["static_resources"]["listeners"][0]))
        second["name"] = "l2"
        second["address"]["socket_address"]["port_value"] = 10001
        second["filter_chains"][0]["filters"][0]["typed_config"]["idle_timeout"] = "1h"
        doc["static_resources"]["listeners"][0]["statPrefx"] = "x"
        doc["static_resources"]["listeners"].append(second)
        errors = by_path(errors_of(tmp_path, doc))
        assert set(errors) == {
            "static_resources.listeners[0].statPrefx",
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.idle_timeout",
        }
        assert errors["static_resources.listeners[0].statPrefx"].hint == "did you mean `statPrefix`?"
        assert 'did you mean "3600s"?' in errors[
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.idle_timeout"
        ].hint

    def test_checks_go_on_past_a_bad_field(self, tmp_path):
        # The cross-field checks still run on a cluster that has a bad field.
        doc = base()
        cluster = doc["static_resources"]["clusters"][1]
        cluster.update(connect_timeout="1", type="STRICT_DNS")
        doc["static_resources"]["clusters"].append({"name": "c2", "lb_policy": "MAGLEV"})
        errors = by_path(errors_of(tmp_path, doc))
        assert set(errors) == {
            "static_resources.clusters[1].connect_timeout",
            "static_resources.clusters[1].type",
            "static_resources.clusters[2].name",
            "static_resources.clusters[2].lb_policy",
        }
        assert "duplicate cluster 'c2'" in errors["static_resources.clusters[2].name"].message

    def test_type_errors_are_all_reported(self, tmp_path):
        doc = base()
        doc["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = 70000
        doc["static_resources"]["clusters"][0]["per_connection_buffer_limit_bytes"] = "lots"
        doc["static_resources"]["clusters"][1]["name"] = ""
        errors = by_path(errors_of(tmp_path, doc))
        assert set(errors) == {
            "static_resources.listeners[0].address.socket_address.port_value",
            "static_resources.clusters[0].per_connection_buffer_limit_bytes",
            "static_resources.clusters[1].name",
        }
        assert "<= 65535" in errors["static_resources.listeners[0].address.socket_address.port_value"].message

    def test_no_made_up_errors_after_a_bad_value(self, tmp_path):
        doc = base()
        listener = doc["static_resources"]["listeners"][0]
        chain = listener["filter_chains"][0]
        # A bad source_type must not make the two chains "overlap" (both ANY).
        chain["filter_chain_match"] = {"source_type": "EXTERNALL"}
        other = json.loads(json.dumps(chain))
        other["filter_chain_match"] = {"source_type": "ANY"}
        listener["filter_chains"].append(other)
        # A tcp_proxy whose cluster erred is not "missing a cluster".
        other["filters"][0]["typed_config"]["cluster"] = ["c1"]
        # A cluster that erred is still a known cluster name.
        doc["static_resources"]["clusters"][0]["load_assignment"]["endpoints"] = "none"
        errors = errors_of(tmp_path, doc)
        assert {e.path for e in errors} == {
            "static_resources.listeners[0].filter_chains[0].filter_chain_match.source_type",
            "static_resources.listeners[0].filter_chains[1].filters[0].typed_config.cluster",
            "static_resources.clusters[0].load_assignment.endpoints",
        }

    def test_missing_field_is_placed_at_its_message(self, tmp_path):
        text = CONFIG.replace(
            "    address: {socket_address: {address: 127.0.0.1, port_value: 10001}}\n", ""
        ).replace("          stat_prefix: one\n", "")
        errors = by_path(errors_of(tmp_path, text))
        missing = errors["static_resources.listeners[1].address"]
        assert missing.message == "missing required field" and missing.line == 12  # "- name: l2"
        assert missing.hint == "add `address` to static_resources.listeners[1]"
        stat = errors["static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix"]
        assert stat.line == 9  # the typed_config key

    def test_valid_configs_have_no_errors(self, tmp_path):
        assert errors_of(tmp_path, base()) == []
        assert errors_of(tmp_path, FULL_EXAMPLE) == []
        assert validate_bootstrap(config_yaml=yaml.safe_dump(BASE)) == []

    @pytest.mark.parametrize("mutate, path, fragment", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
    def test_agrees_with_load_bootstrap(self, tmp_path, mutate, path, fragment):
        doc = base()
        mutate(doc)
        config = write(tmp_path, doc)
        with pytest.raises(ConfigError) as first:
            load_bootstrap(config)
        errors = validate_bootstrap(config)
        assert (first.value.path, first.value.message) in [(e.path, e.message) for e in errors]
        assert all(e.line is not None for e in errors if e.path), [e.describe() for e in errors]

    def test_no_input(self):
        (error,) = validate_bootstrap()
        assert "no configuration given" in error.message

    def test_yaml_syntax_error(self, tmp_path):
        (error,) = errors_of(tmp_path, "static_resources:\n  clusters: [\n    {name: a}\n  foo: bar\n")
        assert (error.path, error.line, error.column) == ("", 4, 3)
        assert error.describe() == error.message and "invalid YAML at line 4" in error.message


class TestHints:
    def one(self, tmp_path, mutate):
        doc = base()
        mutate(doc)
        (error,) = errors_of(tmp_path, doc)
        return error

    def test_misspelt_field(self, tmp_path):
        error = self.one(tmp_path, lambda d: d["static_resources"]["clusters"][1].update(conect_timeout="1s"))
        assert error.path == "static_resources.clusters[1].conect_timeout"
        assert error.hint == "did you mean `connect_timeout`?"

    def test_misspelt_camel_case_field(self, tmp_path):
        error = self.one(tmp_path, lambda d: d["static_resources"]["clusters"][1].update(conectTimeout="1s"))
        assert error.hint == "did you mean `connectTimeout`?"

    def test_unknown_field_lists_supported_fields(self, tmp_path):
        error = self.one(tmp_path, lambda d: d["static_resources"]["clusters"][1].update(zzz=1))
        assert error.hint.startswith("fields envoy_fast supports here: name, alt_stat_name, type, connect_timeout")

    def test_enum_close_match(self, tmp_path):
        error = self.one(tmp_path, lambda d: d["static_resources"]["clusters"][1].update(lb_policy="least-request"))
        assert error.hint == "did you mean `LEAST_REQUEST`?"

    def test_enum_allowed_names(self, tmp_path):
        error = self.one(tmp_path, lambda d: d["static_resources"]["clusters"][1].update(lb_policy="quickest"))
        assert "unknown enum value 'quickest'" in error.message
        assert error.hint.startswith("use one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM")

    @pytest.mark.parametrize(
        "value, guess",
        [("500ms", "0.5s"), ("5m", "300s"), ("5", "5s"), (5, "5s"), (0.25, "0.25s"), ("2 s", "2s"), ("1h", "3600s")],
    )
    def test_duration(self, tmp_path, value, guess):
        error = self.one(tmp_path, lambda d: d["static_resources"]["clusters"][1].update(connect_timeout=value))
        assert "invalid duration" in error.message
        assert error.hint.startswith(f'did you mean "{guess}"?')
        assert '"5s", "0.25s"' in error.hint and "{seconds: 5, nanos: 250000000}" in error.hint

    def test_duration_without_a_guess(self, tmp_path):
        error = self.one(tmp_path, lambda d: d["static_resources"]["clusters"][1].update(connect_timeout="soon"))
        assert error.hint.startswith("accepted forms:")

    def test_unknown_cluster(self, tmp_path):
        error = self.one(
            tmp_path,
            lambda d: d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"].update(
                cluster="c11"
            ),
        )
        assert error.hint == "did you mean `c1`? defined clusters: c1, c2"


class TestDescribe:
    def test_format(self):
        err = ConfigError("bad", "a.b", line=3, hint="fix it")
        assert str(err) == "a.b: bad"
        assert err.describe() == "a.b (line 3): bad; fix it"
        assert ConfigError("bad", "a.b").describe() == "a.b: bad"
        inline = ConfigError("bad", "a.b", line=2, source="--config-yaml")
        assert inline.describe() == "a.b (--config-yaml line 2): bad"

    def test_pickles_with_line_and_hint(self):
        err = pickle.loads(pickle.dumps(ConfigError("bad", "a.b", line=3, hint="fix it", column=7, source="file")))
        assert (err.message, err.path, err.line, err.hint, err.column, err.source) == (
            "bad", "a.b", 3, "fix it", 7, "file"
        )

    def test_config_yaml_lines(self, tmp_path):
        overlay = "node: {id: x}\nstatic_resources:\n  clusters:\n  - name: c1\n    connect_timeout: 2\n"
        errors = errors_of(tmp_path, base(), config_yaml=overlay)
        assert [(e.path, e.source, e.line) for e in errors] == [
            ("static_resources.clusters[2].name", "--config-yaml", 4),  # path into the merged config
            ("static_resources.clusters[0].connect_timeout", "--config-yaml", 5),  # path into --config-yaml
        ]
        assert "duplicate cluster 'c1'" in errors[0].describe()
        assert errors[1].describe().startswith(
            "static_resources.clusters[0].connect_timeout (--config-yaml line 5): invalid duration 2"
        )

    def test_config_yaml_replacing_a_file_value(self, tmp_path):
        doc = base()
        doc["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}}
        overlay = "\nadmin:\n  address:\n    socket_address: {address: localhost}\n"
        (error,) = errors_of(tmp_path, doc, config_yaml=overlay)
        assert (error.path, error.source, error.line) == ("admin.address.socket_address.address", "--config-yaml", 4)

    def test_json_lines(self, tmp_path):
        doc = yaml.safe_load(CONFIG)
        errors = errors_of(tmp_path, json.dumps(doc, indent=1), name="envoy.json")
        text = json.dumps(doc, indent=1).splitlines()
        assert len(errors) == 5
        for error in errors:
            key = error.path.rsplit(".", 1)[-1]
            assert f'"{key}"' in text[error.line - 1], (error.describe(), text[error.line - 1])


def run_validate(*args):
    return subprocess.run(
        [sys.executable, "-m", "envoy_fast", "--mode", "validate", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )


class TestCli:
    def test_every_error_then_a_summary(self, tmp_path):
        path = write(tmp_path, CONFIG)
        r = run_validate("-c", path)
        assert r.returncode == 1 and r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert lines == [
            "static_resources.listeners[0].bogus_field (line 5): unknown field:"
            " envoy.config.listener.v3.Listener has no field 'bogus_field';"
            " fields envoy_fast supports here: name, address, stat_prefix, filter_chains,"
            " default_filter_chain, per_connection_buffer_limit_bytes, enable_reuse_port",
            lines[1],
            "static_resources.clusters[0].conect_timeout (line 25): unknown field:"
            " envoy.config.cluster.v3.Cluster has no field 'conect_timeout'; did you mean `connect_timeout`?",
            lines[3],
            lines[4],
            f"error initializing configuration '{path}': 5 errors",
        ]
        assert lines[1].startswith(
            "static_resources.listeners[1].filter_chains[0].filters[0].typed_config.idle_timeout (line 22):"
            " invalid duration '500ms'"
        )
        assert lines[1].endswith(
            'did you mean "0.5s"? accepted forms: "5s", "0.25s" (decimal seconds ending in s)'
            " or {seconds: 5, nanos: 250000000}"
        )
        assert lines[3].startswith("static_resources.clusters[1].lb_policy (line 27): unknown enum value")
        assert lines[3].endswith("; did you mean `LEAST_REQUEST`?")
        assert lines[4].startswith("static_resources.clusters[2].connect_timeout (line 29): invalid duration 5")

    def test_one_error(self, tmp_path):
        doc = base()
        doc["static_resources"]["clusters"][0]["conect_timeout"] = "1s"
        path = write(tmp_path, doc)
        r = run_validate("-c", path)
        assert r.returncode == 1
        assert r.stderr.splitlines()[-1] == f"error initializing configuration '{path}': 1 error"

    def test_config_yaml(self, tmp_path):
        path = write(tmp_path, base())
        r = run_validate("-c", path, "--config-yaml", "static_resources:\n  clusters:\n  - {name: c9, type: EDSS}\n")
        assert r.returncode == 1
        assert "static_resources.clusters[0].type (--config-yaml line 3): unknown enum value 'EDSS'" in r.stderr
        assert "did you mean `EDS`?" in r.stderr

    def test_ok_unchanged(self, tmp_path):
        path = write(tmp_path, base())
        r = run_validate("-c", path)
        assert (r.returncode, r.stdout, r.stderr) == (0, f"configuration '{path}' OK\n", "")
