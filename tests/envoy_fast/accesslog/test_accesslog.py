"""Access logs for tcp_proxy (envoy_fast.accesslog): formats, config, writing.

Expected lines below were printed by the real Envoy 1.40 (the oracle) for the
same fields; ``envoy_log_lines`` re-checks a set of formats against a running
Envoy (``require_peer``: skipped when the binary is missing, failed under CI).
"""
from __future__ import annotations

import calendar
import concurrent.futures
import json
import os
import pickle
import random
import re
import socket
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional

import msgspec
import pytest
import yaml

from envoy_fast.accesslog import (
    DEFAULT_FORMAT,
    AccessLogManager,
    FormatError,
    build_access_log_plan,
)
from envoy_fast.accesslog.format import RESPONSE_FLAGS_LONG, compile_format, parse_json, parse_text
from envoy_fast.accesslog.plan import (AccessLogPlan, FormatOperator, JsonFormatPlan, JsonFormatted, JsonList,
                                       JsonLiteral, JsonMember, JsonObject, TextFormatPlan)
from envoy_fast.config import ConfigError, load_bootstrap

from helpers import (
    bootstrap,
    cluster,
    free_port,
    hello_world_connection,
    listener,
    require_peer,
    run_envoy,
    scripted_server,
    tcp_proxy_filter,
)

FILE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
STDOUT = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
STDERR = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
TP_PATH = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"


def _epoch(y, mo, d, h, mi, s, us):
    return calendar.timegm((y, mo, d, h, mi, s)) + us / 1e6


# The fields of two connections Envoy logged (its values, see the module doc).
OK = {
    "start_time": _epoch(2026, 11, 25, 7, 22, 18, 706626),
    "duration_ms": 53,
    "downstream_remote_address": "127.0.0.1:34914",
    "downstream_local_address": "127.0.0.1:36493",
    "upstream_host": "127.0.0.1:40221",
    "upstream_cluster": "up",
    "upstream_local_address": "127.0.0.1:41630",
    "bytes_received": 11,
    "bytes_sent": 11,
    "response_flags": [],
    "connection_id": 2,
    "upstream_request_attempt_count": 1,
}
REFUSED = {
    "start_time": _epoch(2026, 11, 25, 7, 22, 20, 617944),
    "duration_ms": 3,
    "downstream_remote_address": "127.0.0.1:41984",
    "downstream_local_address": "127.0.0.1:33409",
    "upstream_host": "127.0.0.1:59519",
    "upstream_cluster": "up",
    "upstream_local_address": None,
    "bytes_received": 0,
    "bytes_sent": 0,
    "response_flags": ["UF", "URX"],
    "connection_id": 2,
    "upstream_request_attempt_count": 1,
    "upstream_transport_failure_reason": "delayed connect error: Connection refused",
}

# Envoy's %OP% values for OK and REFUSED, as it printed them in a text format.
ENVOY_TEXT = {
    "START_TIME": ("2026-11-25T07:22:18.706Z", "2026-11-25T07:22:20.617Z"),
    "DOWNSTREAM_REMOTE_ADDRESS": ("127.0.0.1:34914", "127.0.0.1:41984"),
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": ("127.0.0.1", "127.0.0.1"),
    "DOWNSTREAM_LOCAL_ADDRESS": ("127.0.0.1:36493", "127.0.0.1:33409"),
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": ("127.0.0.1", "127.0.0.1"),
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": ("127.0.0.1:34914", "127.0.0.1:41984"),
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT": ("127.0.0.1", "127.0.0.1"),
    "UPSTREAM_HOST": ("127.0.0.1:40221", "127.0.0.1:59519"),
    "UPSTREAM_CLUSTER": ("up", "up"),
    "UPSTREAM_LOCAL_ADDRESS": ("127.0.0.1:41630", "-"),
    "BYTES_RECEIVED": ("11", "0"),
    "BYTES_SENT": ("11", "0"),
    "DURATION": ("53", "3"),
    "RESPONSE_FLAGS": ("-", "UF,URX"),
    "RESPONSE_FLAGS_LONG": ("-", "UpstreamConnectionFailure,UpstreamRetryLimitExceeded"),
    "RESPONSE_CODE": ("0", "0"),
    "PROTOCOL": ("-", "-"),
    "REQ(:METHOD)": ("-", "-"),
    "RESP(X-FOO)": ("-", "-"),
    "TRAILER(X)": ("-", "-"),
    "CONNECTION_ID": ("2", "2"),
    "UPSTREAM_TRANSPORT_FAILURE_REASON": ("-", "delayed_connect_error:_Connection_refused"),
    "RESPONSE_CODE_DETAILS": ("-", "-"),
    "REQUEST_DURATION": ("-", "-"),
    "RESPONSE_DURATION": ("-", "-"),
    "ROUTE_NAME": ("-", "-"),
    "UPSTREAM_REMOTE_ADDRESS": ("127.0.0.1:40221", "-"),
    "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": ("127.0.0.1", "-"),
    "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": ("127.0.0.1", "-"),
    "DOWNSTREAM_LOCAL_PORT": ("36493", "33409"),
    "DOWNSTREAM_REMOTE_PORT": ("34914", "41984"),
    "UPSTREAM_LOCAL_PORT": ("41630", "-"),
    "UPSTREAM_REMOTE_PORT": ("40221", "-"),
    "DOWNSTREAM_DIRECT_REMOTE_PORT": ("34914", "41984"),
    "UPSTREAM_HOST_NAME": ("127.0.0.1:40221", "127.0.0.1:59519"),
    "UPSTREAM_HOST_NAME_WITHOUT_PORT": ("127.0.0.1", "127.0.0.1"),
    "DOWNSTREAM_TRANSPORT_FAILURE_REASON": ("-", "-"),
    "REQUESTED_SERVER_NAME": ("-", "-"),
    "UPSTREAM_CLUSTER_RAW": ("up", "up"),
    "UPSTREAM_REQUEST_ATTEMPT_COUNT": ("1", "1"),
    "DOWNSTREAM_WIRE_BYTES_SENT": ("11", "0"),
    "DOWNSTREAM_WIRE_BYTES_RECEIVED": ("11", "0"),
    "ACCESS_LOG_TYPE": ("TcpConnectionEnd", "TcpConnectionEnd"),
    "UPSTREAM_PEER_SUBJECT": ("-", "-"),
    "DOWNSTREAM_PEER_SUBJECT": ("-", "-"),
    "REQUEST_TX_DURATION": ("-", "-"),
    "RESPONSE_TX_DURATION": ("-", "-"),
    "REQUEST_HEADERS_BYTES": ("0", "0"),
    "RESPONSE_HEADERS_BYTES": ("0", "0"),
    "VIRTUAL_CLUSTER_NAME": ("-", "-"),
    "DOWNSTREAM_HANDSHAKE_DURATION": ("-", "-"),
}
# Operators Envoy prints as json numbers.
NUMERIC = {
    "BYTES_RECEIVED", "BYTES_SENT", "DURATION", "RESPONSE_CODE", "CONNECTION_ID", "DOWNSTREAM_LOCAL_PORT",
    "DOWNSTREAM_REMOTE_PORT", "UPSTREAM_LOCAL_PORT", "UPSTREAM_REMOTE_PORT", "DOWNSTREAM_DIRECT_REMOTE_PORT",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT", "DOWNSTREAM_WIRE_BYTES_SENT", "DOWNSTREAM_WIRE_BYTES_RECEIVED",
    "REQUEST_HEADERS_BYTES", "RESPONSE_HEADERS_BYTES",
}
# Envoy's lines for OK and REFUSED in its default format.
ENVOY_DEFAULT = (
    '[2026-11-25T07:22:18.706Z] "- - -" 0 - 11 11 53 - "-" "-" "-" "-" "127.0.0.1:40221"\n',
    '[2026-11-25T07:22:20.617Z] "- - -" 0 UF,URX 0 0 3 - "-" "-" "-" "-" "127.0.0.1:59519"\n',
)


def fmt(spec: Any, fields: Dict[str, Any], cluster_alt_names: Optional[Dict[str, str]] = None) -> str:
    return compile_format(spec, cluster_alt_names)(fields)


def text(fmt_string: str, omit: bool = False) -> TextFormatPlan:
    return TextFormatPlan(parts=parse_text(fmt_string), omit_empty_values=omit)


def jsonf(struct: Dict[str, Any], omit: bool = False) -> JsonFormatPlan:
    return JsonFormatPlan(template=parse_json(struct), omit_empty_values=omit)


# --------------------------------------------------------------- operators


class TestOperators:
    @pytest.mark.parametrize("op", sorted(ENVOY_TEXT))
    def test_each_operator_as_envoy(self, op):
        for fields, expected in zip((OK, REFUSED), ENVOY_TEXT[op]):
            assert fmt(text("%" + op + "%"), fields) == expected

    def test_all_operators_in_one_line(self):
        line = "|".join("%s=%%%s%%" % (op, op) for op in ENVOY_TEXT) + "\n"
        for i, fields in enumerate((OK, REFUSED)):
            expected = "|".join("%s=%s" % (op, v[i]) for op, v in ENVOY_TEXT.items()) + "\n"
            assert fmt(text(line), fields) == expected

    def test_default_format(self):
        assert fmt(text(DEFAULT_FORMAT), OK) == ENVOY_DEFAULT[0]
        assert fmt(text(DEFAULT_FORMAT), REFUSED) == ENVOY_DEFAULT[1]

    def test_unset_fields_are_dash(self):
        assert fmt(text("%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %START_TIME% %BYTES_SENT%"), {}) == "- - - -"

    def test_hostname_and_environment(self, monkeypatch):
        monkeypatch.setenv("EF_AL_VAR", "hello")
        monkeypatch.delenv("EF_AL_NONE", raising=False)
        spec = text("%HOSTNAME%|%ENVIRONMENT(EF_AL_VAR)%|%ENVIRONMENT(EF_AL_VAR):3%|%ENVIRONMENT(EF_AL_NONE)%")
        assert fmt(spec, OK) == "%s|hello|hel|-" % socket.gethostname()

    def test_percent_escape_and_literals(self):
        assert fmt(text("a%%b %%%BYTES_SENT%%% c"), OK) == "a%b %11% c"
        assert fmt(text("<%BYTES_SENT%>"), OK) == "<11>"  # no newline added

    def test_response_flags_keep_the_order_given(self):
        # Envoy 1.40 joins the flags in the order they were set.
        assert fmt(text("%RESPONSE_FLAGS%"), dict(OK, response_flags=["URX", "UT"])) == "URX,UT"
        assert fmt(text("%RESPONSE_FLAGS_LONG%"), dict(OK, response_flags=["UH"])) == "NoHealthyUpstream"
        assert RESPONSE_FLAGS_LONG["UO"] == "UpstreamOverflow"

    def test_cluster_alt_name_and_host_name(self):
        spec = text("%UPSTREAM_CLUSTER%|%UPSTREAM_CLUSTER_RAW%|%UPSTREAM_HOST_NAME%|%UPSTREAM_HOST_NAME_WITHOUT_PORT%")
        fields = dict(OK, upstream_host_name="myhost")
        assert fmt(spec, fields, {"up": "alt"}) == "alt|up|myhost|myhost"

    # Envoy's output for DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT(<mask>) with these masks,
    # then UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT(24), DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT(1).
    MASKS = ("abc", "200", "33", "32", "0", "-1", " 8", "08", "+8", "8x", "")
    MASKED = {
        "127.0.0.1": "127.0.0.1|127.0.0.1/32|127.0.0.1/32|127.0.0.1/32|0.0.0.0/0||127.0.0.0/8|127.0.0.0/8"
        "|127.0.0.0/8|127.0.0.1|127.0.0.1|127.0.0.0/24|0.0.0.0/1",
        "::1": "::1|::1/128|::/33|::/32|::/0||::/8|::/8|::/8|::1|::1|127.0.0.0/24|::/1",
    }

    @pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
    def test_address_masks(self, ip):
        spec = "|".join("%%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT(%s)%%" % m for m in self.MASKS)
        spec += "|%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT(24)%|%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT(1)%"
        host = "[%s]" % ip if ":" in ip else ip
        fields = dict(OK, downstream_remote_address=host + ":5000", downstream_local_address=host + ":10000")
        assert fmt(text(spec), fields) == self.MASKED[ip]

    def test_ipv6_addresses(self):
        fields = dict(OK, downstream_remote_address="[::1]:39050", downstream_local_address="[::1]:10000")
        spec = text("%DOWNSTREAM_REMOTE_ADDRESS%|%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%|%DOWNSTREAM_REMOTE_PORT%"
                    "|%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%")
        assert fmt(spec, fields) == "[::1]:39050|::1|39050|::1"


class TestStartTime:
    def test_default_and_custom(self):
        spec = text("%START_TIME(%Y/%m/%dT%H:%M:%S%z %s %3f %6f %9f %e %Ss %f %1f %j %%)%|%START_TIME(%s.%3f)%"
                    "|%START_TIME()%|%START_TIME%|%DURATION%\n")
        assert fmt(spec, OK) == ("2026/11/25T07:22:18+0000 1795591338 706 706626 706626000 25 18s 706626000 7 329 %"
                                 "|1795591338.706|2026-11-25T07:22:18.706Z|2026-11-25T07:22:18.706Z|53\n")

    def test_absl_extensions_and_quirks(self):
        # Envoy finds %s and %f before strftime, so a %% in front does not escape them.
        fields = dict(OK, start_time=_epoch(2026, 11, 25, 7, 23, 42, 36927))
        spec = text("%START_TIME(%z|%Z|%a %b %c|%E4Y|%Ez|%E3S|%T|%F|%%s|%%f|%Q|%0f)%")
        assert fmt(spec, fields) == ("+0000|UTC|Wed Nov Wed Nov 25 07:23:42 2026|2026|+00:00|42.036|07:23:42"
                                     "|2026-11-25|%1795591422|%036927000|%Q|%0f")

    def test_cached_per_second_but_exact(self):
        f = compile_format(text("%START_TIME%|%START_TIME(%H:%M:%S)%"))
        base = _epoch(2026, 1, 2, 3, 4, 5, 0)
        assert f({"start_time": base + 0.999}) == "2026-01-02T03:04:05.999Z|03:04:05"
        assert f({"start_time": base + 1.0}) == "2026-01-02T03:04:06.000Z|03:04:06"
        assert f({"start_time": base + 0.5}) == "2026-01-02T03:04:05.500Z|03:04:05"


class TestJson:
    def test_operators_as_envoy(self):
        # Numeric operators are numbers, unset is null, "-" flags stay "-",
        # keys are sorted whatever their order in the config.
        ops = list(reversed(sorted(ENVOY_TEXT)))
        spec = jsonf({op: "%" + op + "%" for op in ops})
        for i, fields in enumerate((OK, REFUSED)):
            expected = {}
            for op in ops:
                v = ENVOY_TEXT[op][i]
                if v == "-" and op not in ("RESPONSE_FLAGS", "RESPONSE_FLAGS_LONG"):
                    v = None
                elif op in NUMERIC and v != "-":
                    v = int(v)
                expected[op] = v
            line = fmt(spec, fields)
            assert line == json.dumps(expected, sort_keys=True, separators=(",", ":")) + "\n"

    def test_omit_empty_values(self):
        spec = {op: "%" + op + "%" for op in ENVOY_TEXT}
        line = fmt(jsonf(spec, omit=True), REFUSED)
        got = json.loads(line)
        assert "UPSTREAM_LOCAL_ADDRESS" not in got and "PROTOCOL" not in got
        assert got["RESPONSE_FLAGS"] == "UF,URX" and got["BYTES_SENT"] == 0
        assert fmt(jsonf({"f": "%RESPONSE_FLAGS%"}, omit=True), OK) == '{"f":"-"}\n'

    # Envoy's output for this json_format (the fields: OK's, upstream_local 127.0.0.1:44910).
    MIXED = {
        "mixed_unset": "a %REQ(x)% b", "lit_null": None, "nest": {"u": "%REQ(x)%", "v": "%PROTOCOL%"},
        "lst": ["%REQ(x)%", 1], "st": "%START_TIME%", "only_lit": "", "two": "%REQ(x)%%PROTOCOL%",
        "env": "%ENVIRONMENT(EF_AL_X)%", "envnum": "%ENVIRONMENT(EF_AL_N)%",
    }

    def test_mixed_values(self, monkeypatch):
        monkeypatch.setenv("EF_AL_X", "hello")
        monkeypatch.setenv("EF_AL_N", "42")
        fields = dict(OK, start_time=_epoch(2026, 11, 25, 7, 23, 42, 36927))
        assert fmt(jsonf(self.MIXED), fields) == (
            '{"env":"hello","envnum":"42","lit_null":null,"lst":[null,1],"mixed_unset":"a - b",'
            '"nest":{"u":null,"v":null},"only_lit":"","st":"2026-11-25T07:23:42.036Z","two":"--"}\n')
        assert fmt(jsonf(self.MIXED, omit=True), fields) == (
            '{"env":"hello","envnum":"42","lst":[1],"mixed_unset":"a  b","only_lit":"",'
            '"st":"2026-11-25T07:23:42.036Z","two":""}\n')

    LITERALS = {"e": [], "o": {}, "f": 2.5, "g": 1e-7, "big": 12345678901, "neg": -1,
                "s": "\u00e9\t\"\\/\u0001", "nest": {"a": {"b": "%REQ(x)%"}}, "l2": [[], {}, None, "%REQ(y)%"]}

    def test_literals(self):
        # As Envoy prints them from a JSON config: an empty struct is left out
        # with omit_empty_values, an empty list is kept; UTF-8 stays raw.
        s = '"s":"\u00e9\\t\\"\\\\/\\u0001"'
        assert fmt(jsonf(self.LITERALS), OK) == (
            '{"big":12345678901,"e":[],"f":2.5,"g":1e-07,"l2":[[],{},null,null],"neg":-1,'
            '"nest":{"a":{"b":null}},"o":{},%s}\n' % s)
        assert fmt(jsonf(self.LITERALS, omit=True), OK) == (
            '{"big":12345678901,"e":[],"f":2.5,"g":1e-07,"l2":[[]],"neg":-1,%s}\n' % s)

    def test_text_omit_empty_values(self):
        spec = text("[%REQ(x)%][%PROTOCOL%][%RESPONSE_FLAGS%][%UPSTREAM_LOCAL_ADDRESS%]\n", omit=True)
        assert fmt(spec, dict(OK, upstream_local_address="127.0.0.1:44910")) == "[][][-][127.0.0.1:44910]\n"


# Formats Envoy refuses, with its message.
BAD_FORMATS = [
    ("%FOO%", "Not supported field in StreamInfo: FOO"),
    ("%FOO(x):3%", "Not supported field in StreamInfo: FOO"),
    ("%1%", "Not supported field in StreamInfo: 1"),
    ("%START_TIME(%s)% %BAR\n", "Incorrect configuration: %START_TIME(%s)% %BAR\n. Couldn't find valid command at position 17"),
    ("abc%", "Incorrect configuration: abc%. Couldn't find valid command at position 3"),
    ("%%%", "Incorrect configuration: %%%. Couldn't find valid command at position 2"),
    ("%%DURATION%", "Incorrect configuration: %%DURATION%. Couldn't find valid command at position 10"),
    ("%upstream_host%", "Incorrect configuration: %upstream_host%. Couldn't find valid command at position 0"),
    ("%REQ(x):a%", "Incorrect configuration: %REQ(x):a%. Couldn't find valid command at position 0"),
    ("%START_TIME(%s%", "Incorrect configuration: %START_TIME(%s%. Couldn't find valid command at position 0"),
    ("%REQ%", "REQ requires parameters"),
    ("%RESP()%", "RESP requires parameters"),
    ("%ENVIRONMENT()%", "ENVIRONMENT requires parameters"),
    ("%REQ(x?y?z)%", "More than 1 alternative header specified in token: x?y?z"),
    ("%REQ(a/b)%", "Invalid header configuration. Format string contains invalid characters."),
    ("%REQ(:a:b)%", "Invalid header configuration. Format string contains invalid characters."),
    ("%DURATION:5%", "DURATION does not take any parameters or length"),
    ("%DURATION(x)%", "DURATION does not take any parameters or length"),
    ("%UPSTREAM_HOST_NAME(x)%", "UPSTREAM_HOST_NAME does not take any parameters or length"),
    ("%START_TIME(%s):3%", "START_TIME does not allow length to be specified."),
    ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT(8):3%", "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT does not allow length to be specified."),
    ("%START_TIME(%Y%n)%", "Invalid header configuration. Format string contains newline."),
    ("%UPSTREAM_HOST_WITHOUT_PORT%", "Not supported field in StreamInfo: UPSTREAM_HOST_WITHOUT_PORT"),
]
# Formats Envoy accepts, and what it writes for OK (test_formats_match_real_envoy
# checks these against the running Envoy).
GOOD_FORMATS = {
    "%BYTES_SENT()%": "11",
    "%START_TIME%:3": "2026-11-25T07:22:18.706Z:3",
    "%REQ(x):0%": "-",
    "%REQ(A?)%": "-",
    "%REQ(?b)%": "-",
    "%REQ(a'b.c_d)%": "-",
    "%TRAILER(a?b)%": "-",
    "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT(abc)%": "127.0.0.1",
    "%START_TIME(%Q)%": "%Q",
    "a%%b": "a%b",
    "%REQ(x)%%BYTES_SENT%": "-11",
    "": "",
}


class TestParse:
    @pytest.mark.parametrize("bad, message", BAD_FORMATS, ids=[b[0] for b in BAD_FORMATS])
    def test_refused_as_envoy(self, bad, message):
        with pytest.raises(FormatError) as info:
            parse_text(bad)
        assert str(info.value) == message

    @pytest.mark.parametrize("good, written", sorted(GOOD_FORMATS.items()))
    def test_accepted(self, good, written):
        assert fmt(text(good), OK) == written

    def test_known_to_envoy_but_not_here(self):
        with pytest.raises(FormatError, match="UPSTREAM_CONNECTION_ID% is not supported by envoy_fast"):
            parse_text("%UPSTREAM_CONNECTION_ID%")

    def test_json_error_names_the_key(self):
        with pytest.raises(FormatError) as info:
            parse_json({"a": {"b": [1, "%FOO%"]}})
        assert info.value.key_path == ("a", "b", 1)

    def test_parsed_format_is_plan_structs(self):
        parts = parse_text(DEFAULT_FORMAT)
        assert parts[:2] == ["[", FormatOperator(command="START_TIME")]
        assert parse_text("%REQ(x?y):5%") == [FormatOperator(command="REQ", param="x?y", max_length=5)]
        assert parse_json({"b": "%DURATION%", "a": [1, "x%%"]}) == JsonObject(members=[
            JsonMember(key="a", value=JsonList(items=[JsonLiteral(value=1), JsonLiteral(value="x%")])),
            JsonMember(key="b", value=JsonFormatted(parts=[FormatOperator(command="DURATION")]))])

    def test_json_value_of_no_json_type_is_refused(self):
        import datetime

        with pytest.raises(FormatError, match="unsupported json_format value") as info:
            parse_json({"a": [datetime.date(2026, 1, 1)]})
        assert info.value.key_path == ("a", 0)


# ------------------------------------------------------------------- config


def tp_config(access_log: List[dict], tmp_path, **cluster_extra) -> dict:
    cl = cluster("up", [10001], **cluster_extra)
    return bootstrap([listener("l0", 10000, [{"filters": [tcp_proxy_filter("up", access_log=access_log)]}])], [cl])


def load(doc: dict, tmp_path):
    path = tmp_path / "bootstrap.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_bootstrap(str(path))


def tcp_proxy_of(bs):
    return bs.static_resources.listeners[0].filter_chains[0].filters[0].typed_config


class TestConfig:
    def test_plan(self, tmp_path):
        log = str(tmp_path / "a.log")
        doc = tp_config([
            {"name": "f", "typed_config": {"@type": FILE, "path": log}},
            {"name": "t", "typed_config": {"@type": FILE, "path": log, "log_format": {
                "text_format_source": {"inline_string": "%BYTES_SENT%\n"}, "omit_empty_values": True}}},
            {"typed_config": {"@type": STDOUT, "logFormat": {"jsonFormat": {"b": "%DURATION%"}}}},
            {"typed_config": {"@type": STDERR, "log_format": {"text_format": "x"}}},
        ], tmp_path, alt_stat_name="alt")
        bs = load(doc, tmp_path)
        assert os.path.exists(log)  # opened (created) at load, as Envoy does
        plan = build_access_log_plan(tcp_proxy_of(bs), {c.name: c.alt_stat_name for c in bs.static_resources.clusters})
        assert pickle.loads(pickle.dumps(plan)) == plan
        assert all(isinstance(p, AccessLogPlan) for p in plan)
        assert [(p.name, p.sink, p.path) for p in plan] == [
            ("f", "file", log), ("t", "file", log), ("", "stdout", None), ("", "stderr", None)]
        assert plan[0].format == TextFormatPlan(parts=parse_text(DEFAULT_FORMAT), omit_empty_values=False)
        assert plan[1].format == TextFormatPlan(parts=[FormatOperator(command="BYTES_SENT"), "\n"],
                                                omit_empty_values=True)
        assert plan[2].format == jsonf({"b": "%DURATION%"})
        assert plan[3].format.parts == ["x"]
        assert plan[0].cluster_alt_names == {"up": "alt"}

    def test_no_access_log(self, tmp_path):
        assert build_access_log_plan(tcp_proxy_of(load(tp_config([], tmp_path), tmp_path))) == []

    def test_deprecated_file_formats(self, tmp_path):
        log = str(tmp_path / "a.log")
        doc = tp_config([
            {"typed_config": {"@type": FILE, "path": log, "format": "%BYTES_SENT%\n"}},
            {"typed_config": {"@type": FILE, "path": log, "format": ""}},
            {"typed_config": {"@type": FILE, "path": log, "json_format": {"a": "%BYTES_SENT%"}}},
            {"typed_config": {"@type": FILE, "path": log, "typed_json_format": {"a": "%BYTES_SENT%"}}},
        ], tmp_path)
        plan = build_access_log_plan(tcp_proxy_of(load(doc, tmp_path)))
        assert plan[0].format.parts == [FormatOperator(command="BYTES_SENT"), "\n"]
        assert plan[1].format.parts == parse_text(DEFAULT_FORMAT)
        assert plan[2].format == plan[3].format == jsonf({"a": "%BYTES_SENT%"})

    def test_dump_round_trip(self, tmp_path):
        from envoy_fast.config import dump_bootstrap

        doc = tp_config([{"typed_config": {"@type": STDOUT, "log_format": {
            "json_format": {"a": ["%BYTES_SENT%", {"b": 1}]}, "omit_empty_values": True}}}], tmp_path)
        bs = load(doc, tmp_path)
        again = load(json.loads(json.dumps(dump_bootstrap(bs))), tmp_path)
        assert again == bs

    AL = TP_PATH + ".access_log[0]"
    ERRORS = [
        ({"name": "x", "filter": {"status_code_filter": {}}, "typed_config": {"@type": STDOUT}},
         AL + ".filter", "not supported by envoy_fast"),
        ({"name": "x"}, AL + ".typed_config", "missing required field"),
        ({"typed_config": {"@type": FILE}}, AL + ".typed_config.path", "missing required field"),
        ({"typed_config": {"@type": FILE, "path": ""}}, AL + ".typed_config.path", "length >= 1"),
        ({"typed_config": {"@type": FILE, "path": "/nonexistent-dir/x.log"}}, AL + ".typed_config",
         "unable to open file '/nonexistent-dir/x.log': No such file or directory"),
        ({"typed_config": {"@type": STDOUT, "path": "/tmp/x"}}, AL + ".typed_config.path", "unknown field"),
        ({"typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"}},
         AL + ".typed_config.@type", "unsupported access logger type"),
        ({"typed_config": {"@type": STDOUT, "log_format": {"text_format_source": {"inline_string": "%FOO%\n"}}}},
         AL + ".typed_config.log_format", "text_format_source.inline_string: Not supported field in StreamInfo: FOO"),
        ({"typed_config": {"@type": STDOUT, "log_format": {"text_format": "%BAR"}}},
         AL + ".typed_config.log_format", "text_format: Incorrect configuration: %BAR. Couldn't find valid command at position 0"),
        ({"typed_config": {"@type": STDOUT, "log_format": {"json_format": {"a": {"b": ["%FOO%"]}}}}},
         AL + ".typed_config.log_format", "json_format.a.b[0]: Not supported field in StreamInfo: FOO"),
        ({"typed_config": {"@type": FILE, "path": "/tmp/x", "format": "%DURATION(x)%"}},
         AL + ".typed_config", "format: DURATION does not take any parameters or length"),
        ({"typed_config": {"@type": STDOUT, "log_format": {}}}, AL + ".typed_config.log_format",
         "one of text_format, json_format, text_format_source is required"),
        ({"typed_config": {"@type": STDOUT, "log_format": {"text_format": "a", "json_format": {}}}},
         AL + ".typed_config.log_format", "only one of"),
        ({"typed_config": {"@type": STDOUT, "log_format": {"text_format_source": {"filename": "/etc/hostname"}}}},
         AL + ".typed_config.log_format.text_format_source.filename", "not supported by envoy_fast"),
        ({"typed_config": {"@type": STDOUT, "log_format": {"text_format": "x", "formatters": [{"name": "f"}]}}},
         AL + ".typed_config.log_format.formatters", "not supported by envoy_fast"),
    ]

    @pytest.mark.parametrize("entry, path, message", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
    def test_errors(self, tmp_path, entry, path, message):
        with pytest.raises(ConfigError) as info:
            load(tp_config([entry], tmp_path), tmp_path)
        assert info.value.path == path
        assert message in info.value.message

    def test_other_access_log_fields_still_unsupported(self, tmp_path):
        doc = tp_config([], tmp_path)
        doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "access_log_flush_interval"] = "1s"
        with pytest.raises(ConfigError, match="not supported"):
            load(doc, tmp_path)

    # access_log lists Envoy accepts (True) or refuses (False) in --mode validate.
    DIFFERENTIAL = [
        ([{"name": "x", "typed_config": {"@type": FILE, "path": "{tmp}/a.log"}}], True),
        ([{"typed_config": {"@type": STDOUT, "log_format": {"json_format": {"a": "%BYTES_SENT%", "b": {"c": [1]}}}}}], True),
        ([{"typed_config": {"@type": STDERR, "log_format": {"text_format": "", "omit_empty_values": True}}}], True),
        ([{"typed_config": {"@type": FILE, "path": "{tmp}/a.log", "format": "%START_TIME(%s)%\n"}}], True),
        ([{"typed_config": {"@type": STDOUT, "log_format": {"text_format_source": {"inline_string": ""}}}}], True),
        ([{"typed_config": {"@type": STDOUT, "log_format": {"text_format": "%FOO%"}}}], False),
        ([{"typed_config": {"@type": STDOUT, "log_format": {"text_format": "%DURATION:1%"}}}], False),
        ([{"typed_config": {"@type": STDOUT, "log_format": {}}}], False),
        ([{"typed_config": {"@type": STDOUT, "log_format": {"text_format_source": {}}}}], False),
        ([{"typed_config": {"@type": FILE, "path": ""}}], False),
        ([{"typed_config": {"@type": FILE, "path": "/nonexistent-dir/a.log"}}], False),
        ([{"name": "x"}], False),
    ]

    def test_agrees_with_envoy_validate(self, tmp_path):
        paths = []
        for i, (access_log, valid) in enumerate(self.DIFFERENTIAL):
            access_log = json.loads(json.dumps(access_log).replace("{tmp}", str(tmp_path)))
            path = tmp_path / ("v%d.yaml" % i)
            path.write_text(yaml.safe_dump(tp_config(access_log, tmp_path)))
            paths.append(path)
            try:
                load_bootstrap(str(path))
                ours = True
            except ConfigError:
                ours = False
            assert ours == valid, access_log
        envoy = require_peer("envoy")

        def envoy_accepts(path):
            proc = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "-l", "critical",
                                   "--base-id", str(random.randint(1, 10**6))], capture_output=True, text=True,
                                  timeout=60)
            return proc.returncode == 0, proc.stdout + proc.stderr

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(envoy_accepts, paths))
        for (access_log, valid), (envoy_ok, output) in zip(self.DIFFERENTIAL, results):
            assert envoy_ok == valid, (access_log, output)


# ------------------------------------------------------------------- writing


def file_plan(path: str, fmt_string: str = "%BYTES_SENT%\n", name: str = "") -> AccessLogPlan:
    return AccessLogPlan(name=name, sink="file", path=path, format=text(fmt_string))


class TestManager:
    def test_buffered_until_flush(self, tmp_path):
        path = str(tmp_path / "a.log")
        manager = AccessLogManager()
        (logger,) = manager.create([file_plan(path)])
        logger.log(OK)
        logger.log(REFUSED)
        assert open(path).read() == ""
        assert manager.pending_bytes() == 5
        manager.flush()
        assert open(path).read() == "11\n0\n"
        manager.flush()  # nothing new
        assert open(path).read() == "11\n0\n"
        manager.close()

    def test_large_buffer_written_by_log(self, tmp_path):
        path = str(tmp_path / "a.log")
        manager = AccessLogManager()
        (logger,) = manager.create([file_plan(path, "%BYTES_SENT%" + "x" * 1000 + "\n")])
        for _ in range(70):  # 70 * 1003 bytes > 64 KiB
            logger.log(OK)
        data = open(path).read()
        assert len(data) == 66 * 1003  # whole records only, written once past 64 KiB
        manager.flush()
        assert len(open(path).read()) == 70 * 1003
        manager.close()

    def test_loggers_share_one_file(self, tmp_path):
        path = str(tmp_path / "a.log")
        manager = AccessLogManager()
        a, b = manager.create([file_plan(path, "a%BYTES_SENT%\n"), file_plan(path, "b%BYTES_SENT%\n")])
        (c,) = manager.create([file_plan(path, "c\n")])
        for logger in (a, b, c, a):
            logger.log(OK)
        manager.flush()
        assert open(path).read() == "a11\nb11\nc\na11\n"
        fds = [fd for fd in os.listdir("/proc/self/fd") if os.path.realpath("/proc/self/fd/" + fd) == path]
        assert len(fds) == 1
        manager.close()

    def test_appends_to_existing_file(self, tmp_path):
        path = tmp_path / "a.log"
        path.write_text("old\n")
        manager = AccessLogManager()
        manager.create([file_plan(str(path))])[0].log(OK)
        manager.close()
        assert path.read_text() == "old\n11\n"

    def test_reopen_after_rename(self, tmp_path):
        path = str(tmp_path / "a.log")
        manager = AccessLogManager()
        (logger,) = manager.create([file_plan(path, "%CONNECTION_ID%\n")])
        logger.log(dict(OK, connection_id=1))
        manager.flush()
        os.rename(path, path + ".1")  # logrotate
        logger.log(dict(OK, connection_id=2))  # buffered: still goes to the old file
        manager.reopen()
        logger.log(dict(OK, connection_id=3))
        manager.flush()
        assert open(path + ".1").read() == "1\n2\n"
        assert open(path).read() == "3\n"
        manager.close()

    def test_reopen_failure_keeps_writing(self, tmp_path):
        d = tmp_path / "d"
        d.mkdir()
        path = str(d / "a.log")
        manager = AccessLogManager()
        (logger,) = manager.create([file_plan(path)])
        os.rename(str(d), str(tmp_path / "gone"))
        manager.reopen()  # the directory is gone: keep the old file
        logger.log(OK)
        manager.flush()
        assert open(str(tmp_path / "gone" / "a.log")).read() == "11\n"
        manager.close()

    def test_stdout_and_stderr(self, capfd):
        manager = AccessLogManager()
        out, err = manager.create([
            AccessLogPlan(sink="stdout", format=text("out %BYTES_SENT%\n")),
            AccessLogPlan(sink="stderr", format=jsonf({"b": "%BYTES_SENT%"})),
        ])
        out.log(OK)
        err.log(REFUSED)
        manager.flush()
        captured = capfd.readouterr()
        assert captured.out == "out 11\n"
        assert captured.err == '{"b":0}\n'

    def test_whole_lines_from_concurrent_writers(self, tmp_path):
        """Several processes (workers), each with two loggers on one file,
        records of up to 20 KB: every record lands whole."""
        path = str(tmp_path / "shared.log")
        writers, records = 4, 300
        pids = []
        for w in range(writers):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                try:
                    manager = AccessLogManager(buffer_limit=16 * 1024)
                    loggers = manager.create([file_plan(path, "%CONNECTION_ID% %UPSTREAM_CLUSTER%\n"),
                                              file_plan(path, "%CONNECTION_ID% %UPSTREAM_CLUSTER%\n")])
                    rnd = random.Random(w)
                    for i in range(records):
                        payload = "%d-%d-" % (w, i) + "x" * rnd.choice((10, 3000, 20000))
                        loggers[i % 2].log({"connection_id": w * 100000 + i, "upstream_cluster": payload})
                        if i % 37 == 0:
                            manager.flush()
                    manager.close()
                finally:
                    os._exit(0)
            pids.append(pid)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            assert status == 0
        lines = open(path).read().split("\n")
        assert lines[-1] == ""
        seen = set()
        for line in lines[:-1]:
            m = re.fullmatch(r"(\d+) (\d+)-(\d+)-(x+)", line)
            assert m, line[:80]
            cid, w, i = int(m.group(1)), int(m.group(2)), int(m.group(3))
            assert cid == w * 100000 + i and len(m.group(4)) in (10, 3000, 20000)
            seen.add(cid)
        assert len(seen) == writers * records == len(lines) - 1


# ------------------------------------------------ against the real Envoy


def _digit_runs(line: str):
    return re.split(r"(\d+)", line)


def assert_same_shape(envoy_line: str, ours: str, ours_other: str) -> None:
    """``envoy_line`` equals ``ours`` except in the digit runs that differ
    between ``ours`` and ``ours_other`` (the same record rendered with other
    timestamps, durations and connection ids): those may hold any number."""
    e, a, b = _digit_runs(envoy_line), _digit_runs(ours), _digit_runs(ours_other)
    assert len(a) == len(b), (ours, ours_other)
    assert len(e) == len(a), "shape differs:\n envoy: %r\n ours:  %r" % (envoy_line, ours)
    for i, (x, y, z) in enumerate(zip(e, a, b)):
        if i % 2 == 1 and y != z:
            continue  # volatile number
        assert x == y, "differs at %r:\n envoy: %r\n ours:  %r" % (x, envoy_line, ours)


class _Upstream:
    """An echo upstream that records each connection's peer (Envoy's upstream local address)."""

    def __init__(self) -> None:
        self.peers: List[str] = []

        def handler(c: socket.socket):
            self.peers.append("%s:%d" % c.getpeername()[:2])
            c.settimeout(10)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)

        self.handler = handler


def _volatile(fields: Dict[str, Any]) -> Dict[str, Any]:
    return dict(fields, start_time=fields["start_time"] + 40 * 86400 + 3661.111, duration_ms=fields["duration_ms"] + 1234,
                connection_id=fields["connection_id"] + 987)


def envoy_log_lines(cfg_builder: Callable[[int, int, str], dict]) -> Dict[str, List[str]]:
    """Run the real Envoy on ``cfg_builder(listen_port, upstream_port, log_path)``
    (a bootstrap whose tcp_proxy has access logs writing to ``log_path``) for
    (a) ``"ok"``: a connection echoed by the upstream ("hello world" both ways)
    and (b) ``"refused"``: a connection whose upstream refuses it; for each, check
    that envoy_fast's formatter, given the equivalent fields, writes the same
    records (equal but for timestamps, durations and connection ids).
    Returns Envoy's records: {"ok": [...], "refused": [...]}, one per logger
    writing to ``log_path``, in config order.
    """
    require_peer("envoy")
    out: Dict[str, List[str]] = {}
    for case in ("ok", "refused"):
        upstream = _Upstream()
        with scripted_server(upstream.handler) as server:
            upstream_port = server.port if case == "ok" else free_port()
            listen_port, admin_port = free_port(), free_port()
            log_dir = os.path.realpath(os.environ.get("TMPDIR", "/tmp"))
            log_path = os.path.join(log_dir, "ef-accesslog-%d-%d.log" % (os.getpid(), listen_port))
            cfg = cfg_builder(listen_port, upstream_port, log_path)
            cfg["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
            try:
                with run_envoy(cfg):
                    start = time.time()
                    local = hello_world_connection(listen_port, echoed=(case == "ok"))
                    time.sleep(0.3)  # Envoy logs when it has closed both sides
                with open(log_path) as f:
                    envoy = f.read()
                # Build our loggers from the same config (the loader opens log_path too).
                path = log_path + ".yaml"
                with open(path, "w") as f:
                    yaml.safe_dump(cfg, f)
                bs = load_bootstrap(path)
                os.unlink(path)
            finally:
                if os.path.exists(log_path):
                    os.unlink(log_path)
        tp = bs.static_resources.listeners[0].filter_chains[0].filters[0].typed_config
        alt = {c.name: c.alt_stat_name for c in bs.static_resources.clusters}
        plan = [msgspec.structs.replace(p, path=os.devnull)
                for p in build_access_log_plan(tp, alt) if p.sink == "file" and p.path == log_path]
        manager = AccessLogManager()
        loggers = manager.create(plan)
        fields = {
            "start_time": start, "duration_ms": 1, "connection_id": 1,
            "downstream_remote_address": local, "downstream_local_address": "127.0.0.1:%d" % listen_port,
            "upstream_host": "127.0.0.1:%d" % upstream_port, "upstream_cluster": tp.cluster,
            "upstream_request_attempt_count": 1,
        }
        if case == "ok":
            fields.update(upstream_local_address=upstream.peers[0], bytes_received=11, bytes_sent=11, response_flags=[])
        else:
            fields.update(upstream_local_address=None, bytes_received=0, bytes_sent=0, response_flags=["UF", "URX"],
                          upstream_transport_failure_reason="delayed connect error: Connection refused")
        ours = [logger.format(fields) for logger in loggers]
        others = [logger.format(_volatile(fields)) for logger in loggers]
        manager.close()
        # Records end with a newline in every format compared here.
        envoy_records = envoy.splitlines(keepends=True)
        assert len(envoy_records) == len(ours), (envoy, ours)
        for e, a, b in zip(envoy_records, ours, others):
            assert_same_shape(e, a, b)
        out[case] = envoy_records
    return out


def tcp_proxy_cfg(access_log: Callable[[str], List[dict]]) -> Callable[[int, int, str], dict]:
    """A cfg_builder: one listener whose tcp_proxy (cluster "up") has ``access_log(log_path)``."""

    def build(listen_port: int, upstream_port: int, log_path: str) -> dict:
        return bootstrap([listener("l0", listen_port, [{"filters": [tcp_proxy_filter("up", access_log=access_log(log_path))]}])],
                         [cluster("up", [upstream_port])])

    return build


def _all_formats(log_path: str) -> List[dict]:
    ops = sorted(op for op in ENVOY_TEXT)
    line = "|".join("%s=%%%s%%" % (op, op) for op in ops) + "\n"
    j = {op: "%" + op + "%" for op in reversed(ops)}
    j.update(mixed="a %BYTES_SENT% b", nested={"x": "%DURATION%", "lst": [1, "%BYTES_SENT%", "%PROTOCOL%"]},
             num=3, flag=True, lit="plain", pct="%%", empty={})
    masks = "|".join("%%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT(%s)%%" % m for m in TestOperators.MASKS)
    times = ("%START_TIME(%Y/%m/%dT%H:%M:%S%z %s %3f %6f %9f %e %Ss %f %1f %j %%)%|%START_TIME(%s.%3f)%"
             "|%START_TIME()%|%START_TIME(%Z|%Ez|%E3S|%T|%F|%%s|%%f|%Q|%c)%|%HOSTNAME%|%ENVIRONMENT(HOME):4%\n")

    def f(**kw):
        return {"typed_config": dict({"@type": FILE, "path": log_path}, **kw)}

    return [
        f(),
        f(log_format={"text_format_source": {"inline_string": line}}),
        f(log_format={"text_format": line, "omit_empty_values": True}),
        f(log_format={"json_format": j}),
        f(log_format={"json_format": j, "omit_empty_values": True}),
        f(log_format={"text_format": times}),
        f(format=masks + "|%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT(24)%\n"),
        f(json_format={"b": "%BYTES_SENT%", "a": "%START_TIME%"}),
        f(format="|".join(GOOD_FORMATS) + "\n"),
    ]


def test_formats_match_real_envoy():
    """Default, text, json (with and without omit_empty_values), START_TIME
    and address-mask formats: envoy_fast's records match Envoy's, for a
    proxied connection and for a refused one."""
    lines = envoy_log_lines(tcp_proxy_cfg(_all_formats))
    assert re.fullmatch(r'\[\S+\] "- - -" 0 - 11 11 \d+ - "-" "-" "-" "-" "127\.0\.0\.1:\d+"\n', lines["ok"][0])
    assert re.fullmatch(r'\[\S+\] "- - -" 0 UF,URX 0 0 \d+ - "-" "-" "-" "-" "127\.0\.0\.1:\d+"\n', lines["refused"][0])


def test_assert_same_shape():
    assert_same_shape("[12:01] 11 x", "[13:02] 11 x", "[14:03] 11 x")
    with pytest.raises(AssertionError):
        assert_same_shape("[12:01] 12 x", "[13:02] 11 x", "[14:03] 11 x")
    with pytest.raises(AssertionError):
        assert_same_shape("[12:01] 11 y", "[13:02] 11 x", "[14:03] 11 x")
