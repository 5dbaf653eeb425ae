"""Envoy v3 static bootstrap configuration for envoy_fast.

``load_bootstrap(config_path=None, config_yaml=None)`` reads a YAML/JSON bootstrap
(and merges ``--config-yaml`` over it as Envoy does), checks it the way Envoy would
plus envoy_fast's subset limits, and returns a typed :class:`Bootstrap`; any
problem raises :class:`ConfigError` naming the document path (and its line).
``validate_bootstrap`` returns every error instead of raising the first.
``dump_bootstrap`` turns a Bootstrap back into an Envoy-style document.
"""
from .dump import dump_bootstrap
from .errors import ConfigError
from .loader import load_bootstrap, validate_bootstrap
from .types import (
    ENUMS,
    NETWORK_FILTER_TYPES,
    Address,
    Admin,
    Bootstrap,
    CidrRange,
    CircuitBreakers,
    Cluster,
    ClusterLoadAssignment,
    CommonLbConfig,
    Endpoint,
    FilterChain,
    FilterChainMatch,
    LbEndpoint,
    LeastRequestLbConfig,
    Listener,
    LocalityLbEndpoints,
    NetworkFilter,
    Node,
    SocketAddress,
    StaticResources,
    Thresholds,
)

__all__ = [
    "ConfigError",
    "load_bootstrap",
    "validate_bootstrap",
    "dump_bootstrap",
    "ENUMS",
    "NETWORK_FILTER_TYPES",
    "Address",
    "Admin",
    "Bootstrap",
    "CidrRange",
    "CircuitBreakers",
    "Cluster",
    "ClusterLoadAssignment",
    "ClusterWeight",
    "CommonLbConfig",
    "Endpoint",
    "FilterChain",
    "FilterChainMatch",
    "LbEndpoint",
    "LeastRequestLbConfig",
    "Listener",
    "LocalityLbEndpoints",
    "NetworkFilter",
    "Node",
    "SocketAddress",
    "StaticResources",
    "TcpProxy",
    "Thresholds",
    "WeightedClusters",
]

#: Config Structs of built-in extensions, importable from here as before they
#: moved beside their extension (imported at first use: the extension
#: modules import this package).
_EXTENSION_STRUCTS = {
    "TcpProxy": "envoy_fast.extensions.network.tcp_proxy_config",
    "WeightedClusters": "envoy_fast.extensions.network.tcp_proxy_config",
    "ClusterWeight": "envoy_fast.extensions.network.tcp_proxy_config",
}


def __getattr__(name: str):
    module = _EXTENSION_STRUCTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
