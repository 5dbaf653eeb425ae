"""Stat blocks that grow: keyed blocks, and per-cluster response-code stats
with slots made in advance that appear in /stats only once used, as Envoy
creates them on first use."""
import yaml

from envoy_fast import _worker
from envoy_fast.config import load_bootstrap
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout, StatsStore
from helpers import bootstrap, cluster


def _store(rows=2, **cluster_extra):
    cfg = bootstrap([], [cluster("up", [1], **cluster_extra)])
    layout = StatsLayout(load_bootstrap(config_yaml=yaml.safe_dump(cfg)), rows)
    return layout, StatsStore(layout)


def _charge(store, row, code, cluster="up"):
    layout = store.layout
    _worker.charge_status_code_for_test(
        store.mem, row * layout.nstats + layout.cluster_status_codes[cluster], code)


def _codes(store):
    return {k: v for k, v in store.values().items() if k.startswith("cluster.up.upstream_rq_")
            and k[len("cluster.up.upstream_rq_"):][:1].isdigit()}


def test_code_stats_have_slots_but_are_listed_once_used():
    layout, store = _store()
    assert layout.entries["cluster.up.upstream_rq_200"][0] == "counter"
    assert layout.entries["cluster.up.upstream_rq_5xx"][0] == "counter"
    assert _codes(store) == {}
    _charge(store, 0, 200)
    _charge(store, 1, 200)
    _charge(store, 0, 503)
    assert _codes(store) == {"cluster.up.upstream_rq_200": 2, "cluster.up.upstream_rq_2xx": 2,
                             "cluster.up.upstream_rq_503": 1, "cluster.up.upstream_rq_5xx": 1}
    # The other stats of the cluster are untouched and still listed.
    assert store.values()["cluster.up.upstream_rq_total"] == 0


def test_a_code_without_its_own_slot_counts_in_its_class_only():
    layout, store = _store()
    _charge(store, 0, 299)
    _charge(store, 0, 99)
    _charge(store, 0, 600)
    assert _codes(store) == {"cluster.up.upstream_rq_2xx": 1}
    assert "cluster.up.upstream_rq_299" not in layout.entries


def test_every_status_code_has_a_slot_in_class_then_code_order():
    layout, _ = _store()
    base = layout.cluster_status_codes["up"]
    for i in range(5):
        assert layout.entries["cluster.up.upstream_rq_%dxx" % (i + 1)] == ("counter", base + i)
    for i, code in enumerate(_worker.STATUS_CODES):
        assert layout.entries["cluster.up.upstream_rq_%d" % code] == ("counter", base + 5 + i)


def test_code_stats_use_alt_stat_name_and_survive_a_retired_row():
    layout, store = _store(alt_stat_name="alt")
    _charge(store, 0, 404)
    store.retire_row(0)
    vals = store.values()
    assert vals["cluster.alt.upstream_rq_404"] == 1 and vals["cluster.alt.upstream_rq_4xx"] == 1


def test_the_plan_points_a_cluster_at_its_block_and_a_reload_keeps_it():
    cfg = bootstrap([], [cluster("up", [1])])
    layout = StatsLayout(load_bootstrap(config_yaml=yaml.safe_dump(cfg)), 1)
    base = layout.cluster_status_codes["up"]
    cfg["static_resources"]["clusters"].append(cluster("more", [2]))
    bs = load_bootstrap(config_yaml=yaml.safe_dump(cfg))
    layout.extend(bs)
    assert layout.cluster_status_codes["up"] == base
    assert layout.cluster_status_codes["more"] != base
    plan = build_plan(bs, layout, {})
    assert [c.stats.status_codes for c in plan.clusters] == [base, layout.cluster_status_codes["more"]]


def test_keyed_and_dynamic_blocks():
    layout, store = _store(rows=1)
    base = layout.add_block("x.y", (("one", "counter"),))
    # Another block under the same prefix needs its own key.
    other = layout.add_block("x.y", (("two", "counter"),), dynamic=True, key="x.y/more")
    assert other != base and layout.block_base("x.y/more") == other
    assert layout.add_block("x.y", (("one", "counter"),)) == base
    store = StatsStore(layout)
    vals = store.values()
    assert "x.y.one" in vals and "x.y.two" not in vals
    store.view[other] = 3
    assert store.values()["x.y.two"] == 3


# Envoy's Http::Code enum (envoy/http/codes.h in envoyproxy/envoy, as of
# Envoy 1.40), member by member: the codes a cluster's block gives a slot of
# their own. tests/integration/test_status_code_stats.py checks the 2xx-5xx
# ones against the real Envoy.
ENVOY_HTTP_CODE = {
    "Continue": 100, "SwitchingProtocols": 101,
    "OK": 200, "Created": 201, "Accepted": 202, "NonAuthoritativeInformation": 203,
    "NoContent": 204, "ResetContent": 205, "PartialContent": 206, "MultiStatus": 207,
    "AlreadyReported": 208, "IMUsed": 226,
    "MultipleChoices": 300, "MovedPermanently": 301, "Found": 302, "SeeOther": 303,
    "NotModified": 304, "UseProxy": 305, "TemporaryRedirect": 307, "PermanentRedirect": 308,
    "BadRequest": 400, "Unauthorized": 401, "PaymentRequired": 402, "Forbidden": 403,
    "NotFound": 404, "MethodNotAllowed": 405, "NotAcceptable": 406,
    "ProxyAuthenticationRequired": 407, "RequestTimeout": 408, "Conflict": 409, "Gone": 410,
    "LengthRequired": 411, "PreconditionFailed": 412, "PayloadTooLarge": 413,
    "URITooLong": 414, "UnsupportedMediaType": 415, "RangeNotSatisfiable": 416,
    "ExpectationFailed": 417, "MisdirectedRequest": 421, "UnprocessableEntity": 422,
    "Locked": 423, "FailedDependency": 424, "TooEarly": 425, "UpgradeRequired": 426,
    "PreconditionRequired": 428, "TooManyRequests": 429, "RequestHeaderFieldsTooLarge": 431,
    "InternalServerError": 500, "NotImplemented": 501, "BadGateway": 502,
    "ServiceUnavailable": 503, "GatewayTimeout": 504, "HTTPVersionNotSupported": 505,
    "VariantAlsoNegotiates": 506, "InsufficientStorage": 507, "LoopDetected": 508,
    "NotExtended": 510, "NetworkAuthenticationRequired": 511,
    "LastUnassignedServerErrorCode": 599,
}


def test_the_codes_with_a_slot_are_envoys_http_code_enum():
    layout, store = _store()
    prefix = "cluster.up.upstream_rq_"
    allocated = sorted(int(n[len(prefix):]) for n in layout.entries
                       if n.startswith(prefix) and n[len(prefix):].isdigit())
    assert allocated == sorted(ENVOY_HTTP_CODE.values())
    # Each of them is charged to its own name; a code Envoy does not name
    # (418, 102) only to its class.
    for code in ENVOY_HTTP_CODE.values():
        _charge(store, 0, code)
    _charge(store, 0, 418)
    _charge(store, 0, 102)
    codes = _codes(store)
    assert {k for k in codes if not k.endswith("xx")} == {
        prefix + str(c) for c in ENVOY_HTTP_CODE.values()}
    assert codes[prefix + "4xx"] == len([c for c in ENVOY_HTTP_CODE.values() if c // 100 == 4]) + 1
    assert codes[prefix + "1xx"] == 3
