"""FilterChainManager: Envoy's filter_chain_match precedence.

Envoy narrows the candidates one criterion at a time, in this order, and never
backtracks: destination port, destination IP, (server names, transport and
application protocols: not modelled), direct source IP, source type, source
IP, source port. At each step the most specific match wins (exact port,
longest prefix, specific source type) and "unset" is the fallback; if nothing
is left the default_filter_chain (or no chain) is the answer.
"""
import ipaddress

import pytest

from envoy_fast._worker import FilterChainImpl, FilterChainManager
from envoy_fast.server.plan_types import FilterChainMatchPlan

ANY, LOCAL, EXTERNAL = 0, 1, 2


def cidr(s):
    net = ipaddress.ip_network(s, strict=False)
    return (net.version, int(net.network_address), net.prefixlen)


def chain(name, **match):
    m = {}
    for k, v in match.items():
        if k in ("prefix_ranges", "direct_source_prefix_ranges", "source_prefix_ranges"):
            v = [cidr(x) for x in v]
        m[k] = v
    return FilterChainImpl(name, [], FilterChainMatchPlan(**m))


def mgr(*chains, default=None):
    return FilterChainManager(list(chains), None if default is None else chain(default))


def find(m, port=80, src="10.1.2.3", src_port=40000, dst="10.0.0.1"):
    return m.find_for_test(port, src, src_port, dst)


# ------------------------------------------------------------ trivial cases

def test_no_chains_no_default():
    assert find(mgr()) is None


def test_no_chains_default():
    assert find(mgr(default="dflt")) == "dflt"


def test_single_catch_all_chain():
    m = mgr(chain("all"))
    assert find(m) == "all"
    assert find(m, port=1, src="::1", dst="::1") == "all"


def test_single_chain_with_match_that_fails_gives_default():
    m = mgr(chain("p", destination_port=81), default="dflt")
    assert find(m, port=81) == "p"
    assert find(m, port=80) == "dflt"
    assert find(mgr(chain("p", destination_port=81)), port=80) is None


def test_match_may_be_none_or_empty():
    assert FilterChainManager([FilterChainImpl("a", [], None)], None).find_for_test(
        1, "1.2.3.4", 5, "5.6.7.8") == "a"
    assert FilterChainManager([FilterChainImpl("a", [], FilterChainMatchPlan())], None).find_for_test(
        1, "1.2.3.4", 5, "5.6.7.8") == "a"


# ------------------------------------------------------------ destination port

def test_destination_port_exact_beats_unset():
    m = mgr(chain("unset"), chain("exact", destination_port=80))
    assert find(m, port=80) == "exact"
    assert find(m, port=81) == "unset"


def test_destination_port_order_does_not_matter():
    m = mgr(chain("exact", destination_port=80), chain("unset"))
    assert find(m, port=80) == "exact"
    assert find(m, port=81) == "unset"


def test_destination_port_no_match_no_unset_is_default():
    m = mgr(chain("a", destination_port=80), chain("b", destination_port=81), default="dflt")
    assert find(m, port=82) == "dflt"
    assert find(m, port=81) == "b"


# ------------------------------------------------------------ destination IP

def test_destination_ip_longest_prefix():
    m = mgr(chain("8", prefix_ranges=["10.0.0.0/8"]),
            chain("24", prefix_ranges=["10.0.0.0/24"]),
            chain("16", prefix_ranges=["10.0.0.0/16"]),
            chain("unset"))
    assert find(m, dst="10.0.0.5") == "24"
    assert find(m, dst="10.0.1.5") == "16"
    assert find(m, dst="10.1.0.5") == "8"
    assert find(m, dst="11.0.0.1") == "unset"


def test_destination_ip_exact_host_and_multiple_ranges_per_chain():
    m = mgr(chain("multi", prefix_ranges=["192.168.0.0/16", "10.0.0.7/32"]),
            chain("net", prefix_ranges=["10.0.0.0/8"]))
    assert find(m, dst="10.0.0.7") == "multi"
    assert find(m, dst="10.0.0.8") == "net"
    assert find(m, dst="192.168.3.3") == "multi"
    assert find(m, dst="172.16.0.1") is None


def test_destination_ip_zero_prefix_matches_everything_of_family():
    m = mgr(chain("v4all", prefix_ranges=["0.0.0.0/0"]), chain("v6all", prefix_ranges=["::/0"]))
    assert find(m, dst="1.2.3.4") == "v4all"
    assert find(m, src="::2", dst="2001:db8::1") == "v6all"


def test_destination_port_narrows_before_destination_ip():
    # The exact port wins even though the other chain has a longer prefix.
    m = mgr(chain("port", destination_port=80, prefix_ranges=["10.0.0.0/8"]),
            chain("longer", prefix_ranges=["10.0.0.0/24"]))
    assert find(m, port=80, dst="10.0.0.1") == "port"
    assert find(m, port=81, dst="10.0.0.1") == "longer"


# ------------------------------------------------------------ direct source IP

def test_direct_source_ip_longest_prefix_then_unset():
    m = mgr(chain("d16", direct_source_prefix_ranges=["10.1.0.0/16"]),
            chain("d24", direct_source_prefix_ranges=["10.1.2.0/24"]),
            chain("unset"))
    assert find(m, src="10.1.2.3") == "d24"
    assert find(m, src="10.1.3.3") == "d16"
    assert find(m, src="10.2.3.3") == "unset"


def test_destination_ip_narrows_before_direct_source():
    m = mgr(chain("dst", prefix_ranges=["10.0.0.0/24"]),
            chain("dsrc", prefix_ranges=["10.0.0.0/8"], direct_source_prefix_ranges=["10.1.2.3/32"]))
    assert find(m, src="10.1.2.3", dst="10.0.0.1") == "dst"
    assert find(m, src="10.1.2.3", dst="10.0.1.1") == "dsrc"


# ------------------------------------------------------------ source type

def test_source_type_local_and_external():
    m = mgr(chain("local", source_type=LOCAL), chain("external", source_type=EXTERNAL))
    assert find(m, src="127.0.0.1", dst="127.0.0.1") == "local"
    assert find(m, src="127.9.9.9", dst="10.0.0.1") == "local"        # loopback
    assert find(m, src="10.0.0.1", dst="10.0.0.1") == "local"         # same IP
    assert find(m, src="10.0.0.2", dst="10.0.0.1") == "external"
    assert find(m, src="::1", dst="::1") == "local"
    assert find(m, src="2001:db8::2", dst="2001:db8::1") == "external"
    assert find(m, src="2001:db8::1", dst="2001:db8::1") == "local"


def test_source_type_specific_beats_any():
    m = mgr(chain("any"), chain("local", source_type=LOCAL))
    assert find(m, src="127.0.0.1", dst="127.0.0.1") == "local"
    assert find(m, src="10.0.0.2", dst="10.0.0.1") == "any"
    m = mgr(chain("any", source_type=ANY), chain("external", source_type=EXTERNAL))
    assert find(m, src="10.0.0.2", dst="10.0.0.1") == "external"
    assert find(m, src="127.0.0.1", dst="127.0.0.1") == "any"


def test_source_type_no_match_no_any_is_default():
    m = mgr(chain("external", source_type=EXTERNAL), default="dflt")
    assert find(m, src="127.0.0.1", dst="127.0.0.1") == "dflt"


def test_direct_source_narrows_before_source_type():
    m = mgr(chain("dsrc", direct_source_prefix_ranges=["127.0.0.0/8"], source_type=EXTERNAL),
            chain("local", source_type=LOCAL), default="dflt")
    # The direct-source chain is the only survivor of step 3, then fails step 4.
    assert find(m, src="127.0.0.1", dst="127.0.0.1") == "dflt"


# ------------------------------------------------------------ source IP

def test_source_ip_longest_prefix_then_unset():
    m = mgr(chain("s8", source_prefix_ranges=["10.0.0.0/8"]),
            chain("s32", source_prefix_ranges=["10.1.2.3/32"]),
            chain("unset"))
    assert find(m, src="10.1.2.3") == "s32"
    assert find(m, src="10.1.2.4") == "s8"
    assert find(m, src="11.1.2.4") == "unset"


def test_source_type_narrows_before_source_ip():
    m = mgr(chain("ext", source_type=EXTERNAL),
            chain("src", source_prefix_ranges=["10.1.2.3/32"]))
    # EXTERNAL is specific: the source-IP chain (type ANY) is out.
    assert find(m, src="10.1.2.3", dst="10.0.0.1") == "ext"
    # A local connection has no LOCAL chain: falls back to ANY ones.
    assert find(m, src="10.1.2.3", dst="10.1.2.3") == "src"


# ------------------------------------------------------------ source port

def test_source_port_exact_beats_unset():
    m = mgr(chain("unset"), chain("p", source_ports=[1234, 5678]))
    assert find(m, src_port=1234) == "p"
    assert find(m, src_port=5678) == "p"
    assert find(m, src_port=4321) == "unset"


def test_source_port_no_match_no_unset_is_default():
    m = mgr(chain("p", source_ports=[1234]), default="dflt")
    assert find(m, src_port=1) == "dflt"


def test_source_ip_narrows_before_source_port():
    m = mgr(chain("ip", source_prefix_ranges=["10.1.2.0/24"]),
            chain("port", source_ports=[1234]), default="dflt")
    assert find(m, src="10.1.2.3", src_port=1234) == "ip"
    assert find(m, src="10.1.3.3", src_port=1234) == "port"
    assert find(m, src="10.1.3.3", src_port=1) == "dflt"


# ------------------------------------------------------------ no backtracking

def test_no_backtracking_from_exact_port():
    # The exact-port chain wins step 1, then fails on source port: the
    # catch-all chain is not considered again.
    m = mgr(chain("catch_all"), chain("port80", destination_port=80, source_ports=[1]),
            default="dflt")
    assert find(m, port=80, src_port=1) == "port80"
    assert find(m, port=80, src_port=2) == "dflt"
    assert find(m, port=81, src_port=2) == "catch_all"
    m = mgr(chain("catch_all"), chain("port80", destination_port=80, source_ports=[1]))
    assert find(m, port=80, src_port=2) is None


def test_no_backtracking_from_longest_destination_prefix():
    m = mgr(chain("wide", prefix_ranges=["10.0.0.0/8"]),
            chain("narrow", prefix_ranges=["10.0.0.0/24"], source_type=EXTERNAL),
            default="dflt")
    assert find(m, src="10.9.9.9", dst="10.0.0.1") == "narrow"
    assert find(m, src="127.0.0.1", dst="10.0.0.1") == "dflt"
    assert find(m, src="127.0.0.1", dst="10.0.1.1") == "wide"


def test_no_backtracking_from_destination_prefix_to_unset():
    m = mgr(chain("unset"), chain("dst", prefix_ranges=["10.0.0.0/8"], source_ports=[7]),
            default="dflt")
    assert find(m, dst="10.0.0.1", src_port=8) == "dflt"
    assert find(m, dst="11.0.0.1", src_port=8) == "unset"


def test_no_backtracking_from_source_type():
    m = mgr(chain("any"), chain("local", source_type=LOCAL, source_prefix_ranges=["127.0.0.2/32"]),
            default="dflt")
    assert find(m, src="127.0.0.2", dst="127.0.0.1") == "local"
    assert find(m, src="127.0.0.3", dst="127.0.0.1") == "dflt"
    assert find(m, src="10.0.0.3", dst="127.0.0.1") == "any"


def test_no_backtracking_from_longest_source_prefix():
    m = mgr(chain("s8", source_prefix_ranges=["10.0.0.0/8"]),
            chain("s24", source_prefix_ranges=["10.1.2.0/24"], source_ports=[99]),
            default="dflt")
    assert find(m, src="10.1.2.3", src_port=99) == "s24"
    assert find(m, src="10.1.2.3", src_port=98) == "dflt"
    assert find(m, src="10.1.3.3", src_port=98) == "s8"


def test_no_backtracking_from_direct_source():
    m = mgr(chain("plain"),
            chain("direct", direct_source_prefix_ranges=["10.1.0.0/16"], source_prefix_ranges=["10.1.1.0/24"]),
            default="dflt")
    assert find(m, src="10.1.1.1") == "direct"
    assert find(m, src="10.1.2.1") == "dflt"
    assert find(m, src="10.2.2.1") == "plain"


# ------------------------------------------------------------ full precedence ladder

def test_full_ladder():
    chains = [
        chain("L0_catch_all"),
        chain("L1_port", destination_port=443),
        chain("L2_dst", destination_port=443, prefix_ranges=["10.0.0.0/8"]),
        chain("L3_dsrc", destination_port=443, prefix_ranges=["10.0.0.0/8"],
              direct_source_prefix_ranges=["192.168.0.0/16"]),
        chain("L4_type", destination_port=443, prefix_ranges=["10.0.0.0/8"],
              direct_source_prefix_ranges=["192.168.0.0/16"], source_type=EXTERNAL),
        chain("L5_src", destination_port=443, prefix_ranges=["10.0.0.0/8"],
              direct_source_prefix_ranges=["192.168.0.0/16"], source_type=EXTERNAL,
              source_prefix_ranges=["192.168.1.0/24"]),
        chain("L6_sport", destination_port=443, prefix_ranges=["10.0.0.0/8"],
              direct_source_prefix_ranges=["192.168.0.0/16"], source_type=EXTERNAL,
              source_prefix_ranges=["192.168.1.0/24"], source_ports=[5555]),
    ]
    m = FilterChainManager(chains, chain("default"))
    assert m.find_for_test(80, "1.1.1.1", 1, "9.9.9.9") == "L0_catch_all"
    assert m.find_for_test(443, "1.1.1.1", 1, "9.9.9.9") == "L1_port"
    assert m.find_for_test(443, "1.1.1.1", 1, "10.1.1.1") == "L2_dst"
    # L3..L6 all match the direct source; L3 has source type ANY and
    # loses to EXTERNAL ones on an external connection.
    assert m.find_for_test(443, "192.168.9.9", 1, "10.1.1.1") == "L4_type"
    assert m.find_for_test(443, "192.168.1.9", 1, "10.1.1.1") == "L5_src"
    assert m.find_for_test(443, "192.168.1.9", 5555, "10.1.1.1") == "L6_sport"
    # A destination outside 10/8: of the port-443 chains only the one
    # without destination prefixes (L1) is left, whatever follows.
    assert m.find_for_test(443, "192.168.1.9", 5555, "192.168.1.9") == "L1_port"


def test_full_ladder_fallback_to_default_at_each_step():
    m = FilterChainManager([
        chain("a", destination_port=443, prefix_ranges=["10.0.0.0/8"],
              direct_source_prefix_ranges=["192.168.0.0/16"], source_type=EXTERNAL,
              source_prefix_ranges=["192.168.1.0/24"], source_ports=[5555]),
    ], chain("default"))
    ok = dict(port=443, src="192.168.1.9", src_port=5555, dst="10.1.1.1")
    assert find(m, **ok) == "a"
    for bad in (dict(port=444), dict(dst="11.1.1.1"), dict(src="172.16.1.9"),
                dict(src="192.168.2.9"), dict(src_port=5556)):
        assert find(m, **dict(ok, **bad)) == "default", bad
    # LOCAL connection fails source type EXTERNAL.
    assert find(m, **dict(ok, src="10.1.1.1", dst="10.1.1.1")) == "default"


# ------------------------------------------------------------ IPv6

def test_ipv6_destination_and_source_prefixes():
    m = mgr(chain("v6_32", prefix_ranges=["2001:db8::/32"]),
            chain("v6_64", prefix_ranges=["2001:db8:0:1::/64"]),
            chain("v6_128", prefix_ranges=["2001:db8:0:1::5/128"]),
            chain("v4", prefix_ranges=["10.0.0.0/8"]),
            default="dflt")
    assert find(m, src="2001:db8::9", dst="2001:db8:0:1::5") == "v6_128"
    assert find(m, src="2001:db8::9", dst="2001:db8:0:1::6") == "v6_64"
    assert find(m, src="2001:db8::9", dst="2001:db8:0:2::6") == "v6_32"
    assert find(m, src="2001:db9::9", dst="2001:db9::1") == "dflt"
    assert find(m, dst="10.0.0.1") == "v4"


def test_ip_families_do_not_match_each_other():
    m = mgr(chain("v6", prefix_ranges=["::/0"]), chain("unset"))
    assert find(m, dst="10.0.0.1") == "unset"
    assert find(m, src="::2", dst="::3") == "v6"
    m = mgr(chain("v4", source_prefix_ranges=["0.0.0.0/0"]), chain("unset"))
    assert find(m, src="2001:db8::1", dst="2001:db8::2") == "unset"
    assert find(m, src="1.2.3.4") == "v4"


def test_ipv6_source_prefix_and_port():
    m = mgr(chain("s48", source_prefix_ranges=["2001:db8:1::/48"]),
            chain("s48p", source_prefix_ranges=["2001:db8:1::/48"], source_ports=[443]),
            chain("s128", source_prefix_ranges=["2001:db8:1::1/128"]),
            default="dflt")
    assert find(m, src="2001:db8:1::1", src_port=443, dst="2001:db8::ff") == "s128"
    assert find(m, src="2001:db8:1::2", src_port=443, dst="2001:db8::ff") == "s48p"
    assert find(m, src="2001:db8:1::2", src_port=80, dst="2001:db8::ff") == "s48"
    assert find(m, src="2001:db8:2::2", src_port=80, dst="2001:db8::ff") == "dflt"


def test_ipv6_high_bit_addresses():
    # Addresses with the top bit set must not be treated as negative numbers.
    m = mgr(chain("fe80", prefix_ranges=["fe80::/10"]), chain("ff", prefix_ranges=["ff00::/8"]),
            default="dflt")
    assert find(m, src="fe80::1", dst="fe80::2") == "fe80"
    assert find(m, src="fe80::1", dst="ff02::1") == "ff"
    assert find(m, src="fe80::1", dst="fc00::1") == "dflt"


@pytest.mark.parametrize("dst,expect", [
    ("255.255.255.255", "top"), ("128.0.0.1", "top"), ("127.255.255.255", "dflt")])
def test_ipv4_high_bit_addresses(dst, expect):
    m = mgr(chain("top", prefix_ranges=["128.0.0.0/1"]), default="dflt")
    assert find(m, dst=dst) == expect
