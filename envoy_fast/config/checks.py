"""The checks Envoy makes once a bootstrap is parsed, plus envoy_fast's limits.

Duplicate names and addresses, cluster references, IP literals, filter chain
order and overlapping filter chain matches, and what envoy_fast does not
implement (cluster types, load balancing policies, priorities, protocols).
Each network filter's own checks come with its registry record
(``envoy_fast.extensions.registry``), called with the Checker, whose
``fail``, ``known_cluster`` and ``cluster_hint`` they use.
"""
import ipaddress
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from envoy_fast.extensions import registry

from . import _diagnostics as diag
from . import types as t
from .errors import ConfigError

__all__ = ["Checker"]

_SUPPORTED_LB = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM")


def _related(path: str, other: str) -> bool:
    """Whether one path is the other or inside it."""
    if len(path) > len(other):
        path, other = other, path
    return other == path or other.startswith((path + ".", path + "["))


def _ip(address: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


class Checker:
    """The checks Envoy makes after parsing, plus envoy_fast's subset limits."""

    def __init__(
        self,
        bootstrap: t.Bootstrap,
        errors: List[ConfigError],
        listener_index: Optional[List[int]] = None,
        cluster_index: Optional[List[int]] = None,
        unchecked_clusters: Optional[set] = frozenset(),
        repaired: Sequence[str] = (),
    ) -> None:
        """Errors are appended to ``errors``.

        The Bootstrap may be one built with the listeners and clusters that
        erred left out (see ``convert.py``): ``listener_index`` /
        ``cluster_index`` give the document index of each one kept,
        ``unchecked_clusters`` the names of those left out (None: unknown, so
        cluster references are not checked), ``repaired`` the paths of values
        taken out, whose defaults stand in their place.
        """
        self.bs = bootstrap
        self.errors = errors
        self.clusters: Dict[str, int] = {}
        resources = bootstrap.static_resources
        self.listener_index = listener_index or list(range(len(resources.listeners)))
        self.cluster_index = cluster_index or list(range(len(resources.clusters)))
        self.unchecked_clusters = unchecked_clusters
        self.repaired = list(repaired)

    def fail(self, err: ConfigError) -> None:
        """Note ``err`` and go on -- unless it is about a value that was taken
        out, a message holding one, or a part of one: it would be about the
        default put in place of the bad value.
        """
        if not any(_related(err.path, repaired) for repaired in self.repaired):
            self.errors.append(err)

    def check(self) -> None:
        resources = self.bs.static_resources
        # Clusters first: Envoy's cluster manager initialises before listeners,
        # and filters' cluster references are checked against the cluster names.
        for i, cluster in enumerate(resources.clusters):
            self.cluster(cluster, f"static_resources.clusters[{self.cluster_index[i]}]")
        names: Dict[str, int] = {}
        addresses: Dict[Tuple[str, int], int] = {}
        for i, listener in enumerate(resources.listeners):
            index = self.listener_index[i]
            path = f"static_resources.listeners[{index}]"
            self.listener(listener, index, path)
            if listener.name in names:
                self.fail(
                    ConfigError(
                        f"duplicate listener name '{listener.name}'"
                        f" (also static_resources.listeners[{names[listener.name]}])",
                        f"{path}.name",
                        hint="give each listener a unique name",
                    )
                )
            names.setdefault(listener.name, index)
            sa = listener.address.socket_address
            # Port 0 asks the kernel for a fresh port each time, so it never clashes.
            key = (str(_ip(sa.address)), sa.port_value)
            if sa.port_value != 0 and key in addresses:
                other = resources.listeners[addresses[key]].name
                self.fail(
                    ConfigError(
                        f"listener '{listener.name}' has duplicate address '{sa.address}:{sa.port_value}'"
                        f" as existing listener '{other}'",
                        f"{path}.address",
                        hint="give each listener its own port (or address)",
                    )
                )
            addresses.setdefault(key, i)
        if self.bs.admin is not None:
            self.socket_address(self.bs.admin.address.socket_address, "admin.address.socket_address", "admin")

    # addresses

    def socket_address(self, sa: t.SocketAddress, path: str, what: str) -> None:
        if sa.protocol != "TCP":
            self.fail(
                ConfigError(
                    f"{sa.protocol} is not supported by envoy_fast (TCP only)",
                    f"{path}.protocol",
                    hint="remove `protocol` or set it to TCP",
                )
            )
        if _ip(sa.address) is None:
            hint = ""
            if what == "endpoint":
                hint = (
                    " (a STATIC cluster takes IP literals;"
                    " STRICT_DNS/LOGICAL_DNS are not supported yet by envoy_fast)"
                )
            self.fail(
                ConfigError(
                    f"malformed IP address: {sa.address}{hint}",
                    f"{path}.address",
                    hint="write an IP address such as 127.0.0.1, 0.0.0.0 or ::1",
                )
            )

    def cidr(self, cidr: t.CidrRange, path: str) -> Union[ipaddress.IPv4Network, ipaddress.IPv6Network]:
        ip = _ip(cidr.address_prefix)
        if ip is None:
            raise ConfigError(f"malformed IP address: {cidr.address_prefix}", f"{path}.address_prefix")
        if cidr.prefix_len > ip.max_prefixlen:
            raise ConfigError(
                f"prefix_len {cidr.prefix_len} is out of range for IPv{ip.version} (0-{ip.max_prefixlen})",
                f"{path}.prefix_len",
            )
        # Host bits are masked off, as Envoy's CidrRange does.
        return ipaddress.ip_network(f"{ip}/{cidr.prefix_len}", strict=False)

    # clusters

    def cluster(self, cluster: t.Cluster, path: str) -> None:
        if cluster.name in self.clusters:
            self.fail(
                ConfigError(
                    f"cluster manager: duplicate cluster '{cluster.name}'",
                    f"{path}.name",
                    hint="give each cluster a unique name",
                )
            )
        self.clusters.setdefault(cluster.name, len(self.clusters))
        if cluster.type != "STATIC":
            self.fail(
                ConfigError(
                    f"cluster type {cluster.type} is not supported yet by envoy_fast (STATIC only)",
                    f"{path}.type",
                    hint="use type: STATIC with IP-address endpoints",
                )
            )
        if cluster.connect_timeout <= 0:
            self.fail(
                ConfigError(
                    "value must be greater than 0s", f"{path}.connect_timeout", hint='e.g. connect_timeout: "0.25s"'
                )
            )
        if cluster.lb_policy not in _SUPPORTED_LB:
            self.fail(
                ConfigError(
                    f"lb_policy {cluster.lb_policy} is not supported by envoy_fast ({', '.join(_SUPPORTED_LB)})",
                    f"{path}.lb_policy",
                    hint=f"use one of {', '.join(_SUPPORTED_LB)}",
                )
            )
        self.upstream_http_options(cluster, path)
        la = cluster.load_assignment
        if la is None:
            return
        if not la.cluster_name:
            self.fail(
                ConfigError(
                    "value length must be at least 1 characters",
                    f"{path}.load_assignment.cluster_name",
                    hint=f"set cluster_name (usually the cluster's name, '{cluster.name}')",
                )
            )
        for i, locality in enumerate(la.endpoints):
            lpath = f"{path}.load_assignment.endpoints[{i}]"
            if locality.priority != 0:
                self.fail(
                    ConfigError(
                        f"priority {locality.priority} is not supported by envoy_fast (priority 0 only)",
                        f"{lpath}.priority",
                        hint="remove `priority`",
                    )
                )
            for j, lb_endpoint in enumerate(locality.lb_endpoints):
                epath = f"{lpath}.lb_endpoints[{j}].endpoint.address.socket_address"
                self.socket_address(lb_endpoint.endpoint.address.socket_address, epath, "endpoint")

    def upstream_http_options(self, cluster: t.Cluster, path: str) -> None:
        """What the HTTP/1.1 pool does not implement of the cluster's
        upstream HTTP protocol options."""
        options = cluster.typed_extension_protocol_options
        if not options:
            return
        opts = cluster.http_protocol_options()
        if opts is None:
            return
        (key,) = [k for k in options]
        opath = f"{path}.typed_extension_protocol_options.{key}"
        common = opts.common()
        if cluster.max_requests_per_connection is not None:
            self.fail(ConfigError(
                "Only one of max_requests_per_connection from Cluster or HttpProtocolOptions"
                " can be specified", f"{path}.max_requests_per_connection",
                hint="keep common_http_protocol_options.max_requests_per_connection"))
        if common.max_connection_duration is not None:
            self.fail(ConfigError(
                "not supported by envoy_fast (upstream max_connection_duration)",
                f"{opath}.common_http_protocol_options.max_connection_duration",
                hint="remove `max_connection_duration` (idle_timeout and"
                     " max_requests_per_connection retire upstream connections)"))
        if common.max_stream_duration is not None:
            self.fail(ConfigError(
                "not supported by envoy_fast (upstream max_stream_duration)",
                f"{opath}.common_http_protocol_options.max_stream_duration",
                hint="remove it; the route's timeout bounds an upstream request"))
        if common.headers_with_underscores_action != "ALLOW":
            self.fail(ConfigError(
                "not supported by envoy_fast (upstream headers_with_underscores_action "
                f"{common.headers_with_underscores_action})",
                f"{opath}.common_http_protocol_options.headers_with_underscores_action",
                hint="remove it: upstream responses keep their headers (ALLOW)"))
        h1 = opts.explicit_http_config.http_protocol_options if opts.explicit_http_config else None
        if h1 is not None and h1.allow_chunked_length:
            self.fail(ConfigError(
                "not supported by envoy_fast (upstream allow_chunked_length)",
                f"{opath}.explicit_http_config.http_protocol_options.allow_chunked_length",
                hint="remove it: a response with both Content-Length and chunked is refused"))
        if h1 is not None and h1.header_key_format is not None:
            self.fail(ConfigError(
                "not supported by envoy_fast (upstream header_key_format)",
                f"{opath}.explicit_http_config.http_protocol_options.header_key_format",
                hint="remove it: upstream requests carry lower-case header names"))

    # listeners

    def listener(self, listener: t.Listener, index: int, path: str) -> None:
        sa = listener.address.socket_address
        self.socket_address(sa, f"{path}.address.socket_address", "listener")
        if not listener.name:
            # Envoy names an unnamed listener with a random UUID; a stable one
            # keeps every worker process agreeing on it.
            seed = f"envoy_fast:listener:{index}:{sa.address}:{sa.port_value}"
            listener.name = str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
        if not listener.filter_chains and listener.default_filter_chain is None:
            self.fail(
                ConfigError(
                    f"listener '{listener.name}' has no filter chains (give filter_chains or default_filter_chain)",
                    path,
                    hint="add a filter chain with a tcp_proxy filter",
                )
            )
        keys: List[Optional[Tuple[Any, ...]]] = []
        for i, chain in enumerate(listener.filter_chains):
            cpath = f"{path}.filter_chains[{i}]"
            self.filter_chain(chain, cpath)
            match = chain.filter_chain_match or t.FilterChainMatch()
            if any(_related(f"{cpath}.filter_chain_match", r) for r in self.repaired):
                keys.append(None)  # not compared: it holds a default for a bad value
                continue
            try:
                keys.append(self.match_key(match, f"{cpath}.filter_chain_match"))
            except ConfigError as err:
                self.fail(err)
                keys.append(None)  # not compared with the others
        if listener.default_filter_chain is not None:
            self.filter_chain(listener.default_filter_chain, f"{path}.default_filter_chain")
        self.overlaps(listener, keys, path)

    def filter_chain(self, chain: t.FilterChain, path: str) -> None:
        last = len(chain.filters) - 1
        for i, network_filter in enumerate(chain.filters):
            fpath = f"{path}.filters[{i}]"
            config = network_filter.typed_config
            record = registry.for_config(config)
            if record.terminal and i != last:
                self.fail(
                    ConfigError(
                        f"terminal filter named {network_filter.name} must be the last filter in a network filter chain",
                        fpath,
                        hint=f"move {network_filter.name} to the end of filters",
                    )
                )
            if record.check is not None:  # the filter's own checks (its registry record)
                record.check(config, self, f"{fpath}.typed_config")

    def known_cluster(self, name: str) -> bool:
        """Whether ``name`` is a cluster (or one left out, so unchecked)."""
        if self.unchecked_clusters is None:
            return True
        return name in self.clusters or name in self.unchecked_clusters

    def cluster_hint(self, name: str) -> str:
        names = list(self.clusters) + sorted(self.unchecked_clusters or ())
        if not names:
            return "define the cluster under static_resources.clusters"
        match = diag.close_match(name, names)
        defined = f"defined clusters: {', '.join(names)}"
        return f"did you mean `{match}`? {defined}" if match else defined

    def match_key(self, match: t.FilterChainMatch, path: str) -> Tuple[Any, ...]:
        """The filter_chain_match as per-criterion sets of values (None = unset)."""

        def cidrs(ranges: List[t.CidrRange], name: str) -> frozenset:
            return frozenset(self.cidr(r, f"{path}.{name}[{i}]") for i, r in enumerate(ranges)) or frozenset([None])

        return (
            match,
            frozenset([match.destination_port]),
            cidrs(match.prefix_ranges, "prefix_ranges"),
            cidrs(match.direct_source_prefix_ranges, "direct_source_prefix_ranges"),
            frozenset([match.source_type]),
            cidrs(match.source_prefix_ranges, "source_prefix_ranges"),
            frozenset(match.source_ports) or frozenset([None]),
        )

    def overlaps(self, listener: t.Listener, keys: List[Tuple[Any, ...]], path: str) -> None:
        """Reject two chains that could both be the most specific match, as Envoy.

        Envoy files each chain under every combination of its criteria values; two
        chains sharing a value for every criterion (unset only equals unset) would
        share a slot in its lookup tree.
        """
        hint = "make the filter_chain_match of the two chains differ in some criterion"
        for j, key in enumerate(keys):
            for i in range(j):
                other = keys[i]
                if key is None or other is None:
                    continue
                if all(a & b for a, b in zip(key[1:], other[1:])):
                    chains = listener.filter_chains
                    mpath = f"{path}.filter_chains[{j}].filter_chain_match"
                    if key[0] == other[0]:
                        self.fail(
                            ConfigError(
                                f"filter chain '{chains[j].name}' has the same matching rules defined as"
                                f" '{chains[i].name}' (filter_chains[{i}])",
                                mpath,
                                hint=hint,
                            )
                        )
                    else:
                        self.fail(
                            ConfigError(
                                f"filter chain '{chains[j].name}' has matching rules overlapping those of"
                                f" '{chains[i].name}' (filter_chains[{i}])",
                                mpath,
                                hint=hint,
                            )
                        )
                    break  # one report per chain
