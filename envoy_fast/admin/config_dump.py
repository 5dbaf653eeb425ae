"""/config_dump: the dump, and Envoy's ``resource``, ``mask`` and ``name_regex``.

Envoy builds one message per config tracker (bootstrap, clusters, listeners,
secrets) and then:

* ``?resource=F`` dumps the elements of the first tracker message that has a
  field F, each as its own config (``static_clusters`` gives one
  ``ClustersConfigDump.StaticCluster`` per cluster); F not repeated is a 400,
  no such field a 404.
* ``?mask=p1,p2`` is a protobuf FieldMask. Without ``resource`` every tracker
  message for which every path is valid is trimmed to the paths and kept (the
  others are dropped; none kept is a 400). With ``resource`` each element is
  trimmed, a path's first part naming the element's Any field (``cluster``,
  ``listener``) applying the rest inside it; an invalid path is a 400.
* ``?name_regex=R`` keeps the clusters and listeners whose name R (RE2)
  matches in full.

``include_eds`` (Envoy's EndpointsConfigDump) is refused with a 400 rather
than ignored.

Paths are checked against the fields of the messages envoy_fast models (see
``envoy_fast.config.proto_schema``); below a message it does not model a path is taken as
written. The messages are JSON documents here, so trimming works on dicts.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Tuple

from envoy_fast import regex
from envoy_fast.config import proto_schema as S
from envoy_fast.admin import render

BOOTSTRAP_DUMP = "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
CLUSTERS_DUMP = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
LISTENERS_DUMP = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
SECRETS_DUMP = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
SCOPED_ROUTES_DUMP = "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump"
ROUTES_DUMP = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"
ROUTE_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
_TYPE_PREFIX = "type.googleapis.com/"

PARAMS = (
    ("resource", "The resource to dump"),
    ("mask", "The mask to apply. When both resource and mask are specified, the mask is "
             "applied to every element in the desired repeated field so that only a subset "
             "of fields are returned. The mask is parsed as a Protobuf::FieldMask"),
    ("name_regex", "Dump only the currently loaded configurations whose names match the "
                   "specified regex. Can be used with both resource and mask query "
                   "parameters."),
)

TEXT = "text/plain"
JSON = "application/json"

_STATIC_CLUSTER = "envoy.admin.v3.ClustersConfigDump.StaticCluster"
_STATIC_LISTENER = "envoy.admin.v3.ListenersConfigDump.StaticListener"
_STATIC_ROUTE_CONFIG = "envoy.admin.v3.RoutesConfigDump.StaticRouteConfig"
#: The fields of the tracker messages and of their elements envoy_fast fills.
_DUMP_FIELDS: Dict[str, Dict[str, str]] = {
    "envoy.admin.v3.BootstrapConfigDump": {
        "bootstrap": "envoy.config.bootstrap.v3.Bootstrap", "last_updated": S.TIMESTAMP},
    "envoy.admin.v3.ClustersConfigDump": {
        "version_info": S.SCALAR, "static_clusters": S.REPEATED,
        "dynamic_active_clusters": S.REPEATED, "dynamic_warming_clusters": S.REPEATED},
    "envoy.admin.v3.ListenersConfigDump": {
        "version_info": S.SCALAR, "static_listeners": S.REPEATED,
        "dynamic_listeners": S.REPEATED},
    "envoy.admin.v3.SecretsConfigDump": {
        "static_secrets": S.REPEATED, "dynamic_active_secrets": S.REPEATED,
        "dynamic_warming_secrets": S.REPEATED},
    _STATIC_CLUSTER: {"cluster": S.ANY + "envoy.config.cluster.v3.Cluster",
                      "last_updated": S.TIMESTAMP},
    _STATIC_LISTENER: {"listener": S.ANY + "envoy.config.listener.v3.Listener",
                       "last_updated": S.TIMESTAMP},
    "envoy.admin.v3.ScopedRoutesConfigDump": {
        "inline_scoped_route_configs": S.REPEATED, "dynamic_scoped_route_configs": S.REPEATED},
    "envoy.admin.v3.RoutesConfigDump": {
        "static_route_configs": S.REPEATED, "dynamic_route_configs": S.REPEATED},
    _STATIC_ROUTE_CONFIG: {"route_config": S.ANY + "envoy.config.route.v3.RouteConfiguration",
                           "last_updated": S.TIMESTAMP},
}
S.register(_DUMP_FIELDS)
#: Element type of the repeated tracker fields envoy_fast fills.
_ELEMENTS = {"static_clusters": _STATIC_CLUSTER, "static_listeners": _STATIC_LISTENER,
             "static_route_configs": _STATIC_ROUTE_CONFIG}

Response = Tuple[int, str, str]


def config_dump(bootstrap: Dict[str, Any], last_updated: str,
                names: Optional[Any] = None) -> Dict[str, Any]:
    """The full /config_dump of an Envoy-style bootstrap document; `names`
    (a compiled regex) keeps the clusters and listeners it matches in full."""
    sr = bootstrap.get("static_resources", {})

    def keep(doc: Dict[str, Any]) -> bool:
        return names is None or names.fullmatch(doc.get("name", "")) is not None

    clusters = sorted((c for c in sr.get("clusters", []) if keep(c)),
                      key=lambda c: c.get("name", ""))
    listeners = sorted((l for l in sr.get("listeners", []) if keep(l)),
                       key=lambda l: l.get("name", ""))
    cdump: Dict[str, Any] = {"@type": CLUSTERS_DUMP}
    if clusters:
        cdump["static_clusters"] = [
            {"cluster": dict([("@type", CLUSTER_TYPE)] + list(c.items())),
             "last_updated": last_updated} for c in clusters]
    ldump: Dict[str, Any] = {"@type": LISTENERS_DUMP}
    if listeners:
        ldump["static_listeners"] = [
            {"listener": dict([("@type", LISTENER_TYPE)] + list(l.items())),
             "last_updated": last_updated} for l in listeners]
    configs = [{"@type": BOOTSTRAP_DUMP, "bootstrap": bootstrap, "last_updated": last_updated},
               cdump, ldump]
    route_configs = _route_configs(sr.get("listeners", []))
    if route_configs is not None:
        # Envoy's route trackers exist once an http_connection_manager does.
        rdump: Dict[str, Any] = {"@type": ROUTES_DUMP}
        routes = [rc for rc in route_configs if keep(rc)]
        if routes:
            rdump["static_route_configs"] = [
                {"route_config": dict([("@type", ROUTE_CONFIG_TYPE)] + list(rc.items())),
                 "last_updated": last_updated} for rc in routes]
        configs += [{"@type": SCOPED_ROUTES_DUMP}, rdump]
    configs.append({"@type": SECRETS_DUMP})
    return {"configs": configs}


def _route_configs(listeners: List[Dict[str, Any]]) -> Optional[List[Dict[str, Any]]]:
    """The inline route configurations of the http_connection_managers, in
    listener order (Envoy lists them in the order of a hash map); None when
    there is no http_connection_manager."""
    from envoy_fast.extensions.network.http_connection_manager_config import HCM_TYPE_URL
    out, any_hcm = [], False
    for lst in sorted(listeners, key=lambda l: l.get("name", "")):
        chains = list(lst.get("filter_chains", []))
        if "default_filter_chain" in lst:
            chains.append(lst["default_filter_chain"])
        for chain in chains:
            for f in chain.get("filters", []):
                config = f.get("typed_config") or {}
                url = str(config.get("@type", ""))
                if url.rsplit("/", 1)[-1] == HCM_TYPE_URL.rsplit("/", 1)[-1]:
                    any_hcm = True
                    if "route_config" in config:
                        out.append(config["route_config"])
    return out if any_hcm else None


def handle(query: Dict[str, List[str]], bootstrap: Dict[str, Any], last_updated: str) -> Response:
    """/config_dump with Envoy's query parameters: (status, content type, body)."""
    if "include_eds" in query:
        return 400, TEXT, ("include_eds is not supported by envoy_fast: every cluster is "
                           "static; see ?resource=static_clusters&mask=cluster.load_assignment")
    names = None
    name_regex = query.get("name_regex", [""])[0]
    if name_regex:
        try:
            names = regex.compile(name_regex)
        except regex.RegexError as exc:
            return 400, TEXT, ("INVALID_ARGUMENT: Error while parsing name_regex from %s: %s"
                               % (name_regex, exc))
    dump = config_dump(bootstrap, last_updated, names)
    mask = query["mask"][0] if "mask" in query else None
    paths = [p for p in mask.split(",") if p] if mask is not None else []
    if "resource" in query:
        res = resource_dump(dump, query["resource"][0], mask is not None, paths)
    else:
        res = masked_dump(dump, mask, paths)
    if isinstance(res, tuple):
        return res
    return 200, JSON, render.envoy_json(res)


def _type_of(doc: Dict[str, Any]) -> str:
    return doc["@type"][len(_TYPE_PREFIX):]


def masked_dump(dump: Dict[str, Any], mask: Optional[str], paths: List[str]):
    """Every tracker message the mask fits, trimmed (Envoy's addAllConfigToDump)."""
    if mask is None:
        return dump
    configs = []
    for config in dump["configs"]:
        t = _type_of(config)
        if all(S.path_valid(t, p) for p in paths):
            configs.append(trim(config, t, paths))
    if not configs:
        return (400, TEXT, "FieldMask %s could not be successfully applied to any configs."
                % mask)
    return {"configs": configs}


def resource_dump(dump: Dict[str, Any], resource: str, masked: bool, paths: List[str]):
    """The elements of the first tracker field named `resource`, each trimmed
    by the mask (Envoy's addResourceToDump)."""
    for config in dump["configs"]:
        t = _type_of(config)
        kind = S.field_kind(t, resource)
        if kind is None:
            continue
        if kind != S.REPEATED:
            return (400, TEXT, "%s is not a repeated field. Use ?mask=%s to get only this field"
                    % (resource, resource))
        out = []
        element_type = _ELEMENTS.get(resource, "")
        for element in config.get(resource, []):
            element = dict([("@type", _TYPE_PREFIX + element_type)] + list(element.items()))
            if masked:
                element = trim_resource(element, element_type, paths)
                if element is None:
                    return 400, TEXT, "FieldMask %s could not be successfully used." % (
                        _debug_string(paths))
            out.append(element)
        return {"configs": out} if out else {}
    return 404, TEXT, "%s not found in config dump" % resource


def _debug_string(paths: List[str]) -> str:
    """FieldMask::DebugString as Envoy 1.40's protobuf prints it."""
    def quote(p: str) -> str:
        return '"%s"' % p.replace("\\", "\\\\").replace('"', '\\"')
    return "goo.gle/debugproto  \n" + "".join("paths: %s\n" % quote(p) for p in paths)


def trim_resource(element: Dict[str, Any], element_type: str,
                  paths: List[str]) -> Optional[Dict[str, Any]]:
    """Envoy's trimResourceMessage: paths into the element's Any field apply
    to the resource inside it; None when a path is not valid."""
    outer: List[str] = []
    inner: List[str] = []
    any_field = any_type = None
    for path in paths:
        head, _, rest = path.partition(".")
        kind = S.field_kind(element_type, head)
        if kind is not None and kind.startswith(S.ANY):
            any_field, any_type = head, kind[len(S.ANY):]
            outer.append(head)
            inner.append(rest)
        else:
            outer.append(path)
    element = dict(element)
    if any_field is not None and any_field in element:
        if not all(S.path_valid(any_type, p) for p in inner):
            return None
        element[any_field] = trim(element[any_field], any_type, inner)
    if not all(S.path_valid(element_type, p) for p in outer):
        return None
    return trim(element, element_type, outer)


def _tree(paths: List[str]) -> Dict[str, Any]:
    """protobuf's FieldMaskTree: {} under a name means the whole field."""
    root: Dict[str, Any] = {}
    for path in paths:
        node = root
        parts = path.split(".")
        for i, name in enumerate(parts):
            if name in node and not node[name]:
                break                               # already whole
            if i == len(parts) - 1:
                node[name] = {}
            else:
                node = node.setdefault(name, {"": True})
    return root


def trim(doc: Dict[str, Any], envoy_type: str, paths: List[str]) -> Dict[str, Any]:
    """A copy of `doc` keeping only the fields the paths name (TrimMessage);
    no path keeps everything."""
    if not paths:
        return doc
    return _trim(copy.deepcopy(doc), envoy_type, _tree(paths))


def _trim(doc: Any, envoy_type: str, tree: Dict[str, Any]) -> Any:
    if envoy_type in (S.DURATION, S.TIMESTAMP) and isinstance(doc, str):
        return _trim_time(doc, envoy_type, tree)
    if not isinstance(doc, dict):
        return doc                                  # a wrapper's value, a repeated field
    for name in list(doc):
        if name == "@type":
            continue
        if name not in tree:
            del doc[name]
            continue
        sub = {k: v for k, v in tree[name].items() if k}
        if sub:
            kind = S.field_kind(envoy_type, name) if envoy_type != S.UNMODELLED else None
            doc[name] = _trim(doc[name], kind or S.UNMODELLED, sub)
    return doc


def _trim_time(value: str, envoy_type: str, tree: Dict[str, Any]) -> str:
    """A Duration ("1.500s") or Timestamp ("...T14:05:09.596Z") keeping only
    its seconds or its nanos."""
    keep_s, keep_n = "seconds" in tree, "nanos" in tree
    if envoy_type == S.DURATION:
        body = value[:-1]
        sign = "-" if body.startswith("-") else ""
        whole, _, frac = body.lstrip("-").partition(".")
        whole = whole if keep_s else "0"
        frac = frac if keep_n else ""
        if not int(whole) and not frac.strip("0"):
            return "0s"
        return sign + whole + ("." + frac if frac else "") + "s"
    whole, _, frac = value[:-1].partition(".")
    whole = whole if keep_s else "1970-01-01T00:00:00"
    frac = frac if keep_n else ""
    return whole + ("." + frac if frac else "") + "Z"
