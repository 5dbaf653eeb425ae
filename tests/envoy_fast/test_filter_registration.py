"""A network filter is one registry record: a filter declared here, in the
test alone, is read, checked, dumped and planned by the loader and the plan
builder without any of them naming it."""
import subprocess
import sys

import pytest
import yaml

from envoy_fast.config import ConfigError, dump_bootstrap, load_bootstrap, proto_schema, validate_bootstrap
from envoy_fast.config.base import Duration, Message, NonEmptyStr, names
from envoy_fast.extensions import registry
from envoy_fast.extensions.registry import NetworkFilterConfig, NetworkFilterPlan, NetworkFilterRecord
from helpers import ROOT, bootstrap, cluster, listener, tcp_proxy_filter

TOY_URL = "type.googleapis.com/test.filters.network.toy.v1.Toy"
TOY_TYPE = "test.filters.network.toy.v1.Toy"


class Toy(Message, NetworkFilterConfig, kw_only=True, tag_field="@type", tag=TOY_URL):
    """A filter Envoy does not have: a greeting and a delay."""

    ENVOY_TYPE = TOY_TYPE
    ENVOY_FIELDS = names("greeting delay flavour")

    greeting: NonEmptyStr
    delay: Duration = 1.0


class ToyPlan(NetworkFilterPlan, tag="test.filters.network.toy", kw_only=True):
    greeting: str
    delay: float


def _check(config, checker, path):
    if config.greeting == "boom":
        checker.fail(ConfigError("a toy may not say boom", f"{path}.greeting", hint="say hello"))


@pytest.fixture
def toy():
    record = registry.register_network_filter(NetworkFilterRecord(
        name="test.filters.network.toy",
        config_type=Toy,
        plan_type=ToyPlan,
        build_plan=lambda config, ctx: ToyPlan(greeting=config.greeting, delay=config.delay),
        factory="test.nowhere:Toy.from_plan",      # never imported: no worker here
        check=_check,
        proto_fields={TOY_TYPE: {"delay": 1, "greeting": 2}},
    ))
    try:
        yield record
    finally:
        registry.unregister_network_filter(record.name)


def _config(toy_config):
    chain = {"filters": [{"name": "toy", "typed_config": {"@type": TOY_URL, **toy_config}},
                         tcp_proxy_filter("c")]}
    return yaml.safe_dump(bootstrap([listener("l", 10000, [chain])], [cluster("c", [1])]))


def test_a_registered_filter_loads_and_dumps(toy):
    bs = load_bootstrap(config_yaml=_config({"greeting": "hi", "delay": "0.5s"}))
    config = bs.static_resources.listeners[0].filter_chains[0].filters[0].typed_config
    assert config == Toy(greeting="hi", delay=0.5)
    assert registry.for_config(config) is toy
    dumped = dump_bootstrap(bs)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    assert dumped["typed_config"] == {"@type": TOY_URL, "greeting": "hi", "delay": "0.5s"}
    assert list(proto_schema.order_fields(TOY_TYPE, dumped["typed_config"])) == ["@type", "delay", "greeting"]


def test_a_registered_filter_is_checked_by_its_schema_and_its_own_checks(toy):
    at = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
    errors = validate_bootstrap(config_yaml=_config({"greeting": "boom", "delay": "5ms", "flavour": "x", "x": 1}))
    got = {(e.path, e.message.split(" (in --config-yaml)")[0]) for e in errors}
    assert (f"{at}.delay", "invalid duration '5ms': write decimal seconds with one trailing 's'"
            " (e.g. '5s', '0.25s'), as protobuf's JSON mapping requires") in got
    assert (f"{at}.flavour", f"not supported by envoy_fast ({TOY_TYPE}.flavour)") in got
    assert (f"{at}.x", f"unknown field: {TOY_TYPE} has no field 'x'") in got
    assert (f"{at}.greeting", "a toy may not say boom") in got
    assert len(errors) == 4
    with pytest.raises(ConfigError) as err:
        load_bootstrap(config_yaml=_config({"greeting": ""}))
    assert (err.value.path, err.value.message) == (f"{at}.greeting", "Expected `str` of length >= 1")
    with pytest.raises(ConfigError) as err:
        load_bootstrap(config_yaml=_config({"greeting": "boom"}))
    assert (err.value.path, err.value.hint) == (f"{at}.greeting", "say hello")


def test_the_record_says_whether_the_filter_is_terminal(toy):
    # tcp_proxy is terminal (its record says so); the toy is not.
    chain = {"filters": [tcp_proxy_filter("c"), {"name": "toy", "typed_config": {"@type": TOY_URL, "greeting": "hi"}}]}
    (error,) = validate_bootstrap(config_yaml=yaml.safe_dump(
        bootstrap([listener("l", 10000, [chain])], [cluster("c", [1])])))
    assert error.message.startswith("terminal filter named envoy.filters.network.tcp_proxy must be the last")


def test_a_registered_filter_reaches_the_plan(toy):
    from envoy_fast.server.plan import build_plan
    from envoy_fast.stats.store import StatsLayout

    bs = load_bootstrap(config_yaml=_config({"greeting": "hi", "delay": "2s"}))
    plan = build_plan(bs, StatsLayout(bs, 1), {"l": -1})
    first, second = plan.listeners[0].filter_chains[0].filters
    assert first == ToyPlan(greeting="hi", delay=2.0)
    assert registry.for_plan(second).name == "envoy.filters.network.tcp_proxy"


def test_an_unregistered_filter_is_refused_again(toy):
    registry.unregister_network_filter(toy.name)
    try:
        with pytest.raises(ConfigError, match="unsupported network filter type 'type.googleapis.com/test"):
            load_bootstrap(config_yaml=_config({"greeting": "hi"}))
    finally:
        registry.register_network_filter(toy)


def test_loading_a_config_imports_no_cython():
    code = ("import sys, yaml; from envoy_fast.config import load_bootstrap;"
            "from helpers import bootstrap, cluster, listener, tcp_proxy_filter;"
            "load_bootstrap(config_yaml=yaml.safe_dump(bootstrap([listener('l', 1, [{'filters':"
            " [tcp_proxy_filter('c')]}])], [cluster('c', [2])])));"
            "print(sorted(m for m in sys.modules if m.startswith('envoy_fast._')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": ROOT + ":" + ROOT + "/tests", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "_worker" not in out.stdout, out.stdout


def test_a_record_needs_a_tagged_config_struct_of_its_own(toy):
    class Untagged(Message, NetworkFilterConfig, kw_only=True):
        greeting: str = ""

    class Again(Message, NetworkFilterConfig, kw_only=True, tag_field="@type", tag="example.org/" + TOY_TYPE):
        greeting: str = ""

    for config_type, error in ((Untagged, "must be a NetworkFilterConfig Struct tagged"),
                               (Again, "type URL is test.filters.network.toy's already")):
        class Plan(NetworkFilterPlan, tag="test.filters.network.other"):
            pass
        with pytest.raises(ValueError, match=error):
            registry.register_network_filter(NetworkFilterRecord(
                name="test.filters.network.other", config_type=config_type, plan_type=Plan,
                build_plan=lambda c, ctx: None, factory="x:y"))
    assert "test.filters.network.other" not in [r.name for r in registry.network_filters()]
