"""Envoy's default stat tag extraction: a stat name -> (tag-extracted name, labels).

Prometheus output (``/stats?format=prometheus``) names each series by its
tag-extracted name and turns the tags into labels, as Envoy's
``TagProducerImpl`` with its default ``TagNames`` rules does.
"""
import re
from typing import Any, List, Tuple

_IPV4_PORT = r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}_\d+"
_IPV6_PORT = r"\[[_aAbBcCdDeEfF0-9]+\]_\d+"
_LISTENER_ADDR = r"(?:%s|%s|[^.]+)" % (_IPV4_PORT, _IPV6_PORT)

# Envoy's default tag extractors for the stat families envoy_fast has, in the
# order their labels appear. Each removes group 1 from the name and takes
# group 2 as the label's value.
_TAGS: Tuple[Tuple[str, Any], ...] = (
    ("envoy_response_code", re.compile(r"_rq(_(\d{3}))$")),
    ("envoy_response_code_class", re.compile(r"_rq_((\d))xx$")),
    ("envoy_tcp_prefix", re.compile(r"^tcp\.(([^.]+)\.)")),
    ("envoy_cluster_name", re.compile(r"^cluster\.(([^.]+)\.)")),
    ("envoy_http_conn_manager_prefix", re.compile(r"^listener\..*?\.http\.(([^.]+)\.)")),
    ("envoy_http_conn_manager_prefix", re.compile(r"^http\.(([^.]+)\.)")),
    ("envoy_worker_id", re.compile(r"^listener\.%s\.worker_((\d+)\.)" % _LISTENER_ADDR)),
    ("envoy_worker_id", re.compile(r"^server\.worker_((\d+)\.)")),
    # "admin" is the admin listener's own scope: Envoy leaves it untagged.
    ("envoy_listener_address", re.compile(r"^listener\.((%s)\.)" % _LISTENER_ADDR)),
)


def extract_tags(name: str) -> Tuple[str, List[Tuple[str, str]]]:
    """(tag-extracted name, [(label, value)]) as Envoy's default tag rules."""
    tags: List[Tuple[str, str]] = []
    seen = set()
    for label, rx in _TAGS:
        if label in seen:
            continue
        m = rx.search(name)
        if m is None:
            continue
        if label == "envoy_listener_address" and m.group(2) == "admin":
            continue
        tags.append((label, m.group(2)))
        seen.add(label)
        name = name[:m.start(1)] + name[m.end(1):]
    return name, tags


_PROM_BAD = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_name(extracted: str) -> str:
    """The Prometheus metric name of a tag-extracted stat name."""
    return "envoy_" + _PROM_BAD.sub("_", extracted)
