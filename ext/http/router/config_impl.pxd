# The compiled route table (Envoy source/common/router/config_impl.h):
# RouteConfigImpl holds the virtual hosts by domain and each virtual host's
# routes in order; RouteEntryImpl is one route's action. Everything is built
# once from a RouteTablePlan (envoy_fast/router/plan.py) at config load;
# route() works on HttpHeaderMap offsets and allocates nothing (a safe_regex
# matcher calls RE2 from Python: one bytes object per regex tried).

cdef enum RouteKind:
    ROUTE_KIND_CLUSTER = 0          # route: forward upstream
    ROUTE_KIND_REDIRECT = 1
    ROUTE_KIND_DIRECT_RESPONSE = 2

cdef enum:  # RetryOn bits (RetryPolicyImpl.retry_on)
    ROUTER_RETRY_ON_5XX = 0x1
    ROUTER_RETRY_ON_GATEWAY_ERROR = 0x2
    ROUTER_RETRY_ON_RESET = 0x4
    ROUTER_RETRY_ON_CONNECT_FAILURE = 0x8
    ROUTER_RETRY_ON_RETRIABLE_4XX = 0x10
    ROUTER_RETRY_ON_RETRIABLE_STATUS_CODES = 0x20
    ROUTER_RETRY_ON_REFUSED_STREAM = 0x40          # HTTP/2 only: never on HTTP/1.1
    ROUTER_RETRY_ON_RESET_BEFORE_REQUEST = 0x80    # a reset before the request went out
    ROUTER_RETRY_ON_ENVOY_RATE_LIMITED = 0x100     # a response with x-envoy-ratelimited
    ROUTER_RETRY_ON_HTTP3_POST_CONNECT_FAILURE = 0x200     # HTTP/3 only: never here

cdef enum RouterPathMatchKind:
    ROUTER_PATH_PREFIX = 0
    ROUTER_PATH_EXACT = 1
    ROUTER_PATH_REGEX = 2
    ROUTER_PATH_SEPARATED_PREFIX = 3

cdef enum RouterStringMatchKind:
    ROUTER_STRING_EXACT = 0
    ROUTER_STRING_PREFIX = 1
    ROUTER_STRING_SUFFIX = 2
    ROUTER_STRING_CONTAINS = 3
    ROUTER_STRING_REGEX = 4

cdef enum RouterHeaderMatchKind:
    ROUTER_HEADER_MATCH_PRESENT = 0
    ROUTER_HEADER_MATCH_STRING = 1
    ROUTER_HEADER_MATCH_RANGE = 2

# HeaderValueOption.append_action
cdef enum RouterAppendAction:
    ROUTER_APPEND_IF_EXISTS_OR_ADD = 0
    ROUTER_ADD_IF_ABSENT = 1
    ROUTER_OVERWRITE_IF_EXISTS_OR_ADD = 2
    ROUTER_OVERWRITE_IF_EXISTS = 3

# One piece of a header value format string.
cdef enum RouterFormatKind:
    ROUTER_FORMAT_LITERAL = 0
    ROUTER_FORMAT_DOWNSTREAM_REMOTE_ADDRESS = 1
    ROUTER_FORMAT_DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT = 2
    ROUTER_FORMAT_DOWNSTREAM_LOCAL_ADDRESS = 3
    ROUTER_FORMAT_DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT = 4
    ROUTER_FORMAT_UPSTREAM_REMOTE_ADDRESS = 5
    ROUTER_FORMAT_PROTOCOL = 6
    ROUTER_FORMAT_HOSTNAME = 7
    ROUTER_FORMAT_START_TIME = 8
    ROUTER_FORMAT_REQ = 9

# Virtual host domain classes, in match precedence.
cdef enum RouterDomainKind:
    ROUTER_DOMAIN_EXACT = 0
    ROUTER_DOMAIN_SUFFIX = 1        # *.foo.com: the part after '*'
    ROUTER_DOMAIN_PREFIX = 2        # foo.*: the part before '*'
    ROUTER_DOMAIN_ANY = 3           # *


@cython.final
cdef class RouterStringMatcher:
    """Envoy's StringMatcher (exact/prefix/suffix/contains/safe_regex)."""
    cdef int kind                   # RouterStringMatchKind
    cdef bytes value                # lower-cased when ignore_case
    cdef bint ignore_case
    cdef object regex               # envoy_fast.regex RE2 pattern (REGEX)

    @staticmethod
    cdef RouterStringMatcher from_plan(object plan)
    cdef bint match(self, const char *s, size_t n) except -1


@cython.final
cdef class RouterHeaderMatcher:
    cdef bytes name                 # lower-case
    cdef int id                     # Http1HeaderId (HTTP1_HEADER_OTHER: by name); <0: :path, :method
    cdef int kind                   # RouterHeaderMatchKind
    cdef RouterStringMatcher string_match
    cdef bint present_match         # present_match's value
    cdef int64_t range_start
    cdef int64_t range_end          # exclusive
    cdef bint invert_match
    cdef bint treat_missing_header_as_empty

    @staticmethod
    cdef RouterHeaderMatcher from_plan(object plan)
    cdef bint match(self, HttpHeaderMap headers) except -1
    cdef bint _match_value(self, const char *v, size_t n) except -1


@cython.final
cdef class RouterQueryParameterMatcher:
    cdef bytes name
    cdef RouterStringMatcher string_match   # None: present
    cdef bint present_match

    @staticmethod
    cdef RouterQueryParameterMatcher from_plan(object plan)
    cdef bint match(self, const char *query, size_t query_len) except -1


@cython.final
cdef class RouterHeaderFormatter:
    """A header value format string, split at load into literal and
    operator segments. A value without operators is `literal`."""
    cdef bytes literal              # whole value when no operator, else None
    cdef int count
    cdef int *kinds                 # RouterFormatKind per segment
    cdef int *max_lengths           # -1: none
    cdef list args                  # per segment: literal bytes, REQ names (tuple), ...
    cdef list ids                   # per segment: REQ header ids (tuple) or None
    cdef list callables             # per segment: START_TIME(fmt) formatter or None

    @staticmethod
    cdef RouterHeaderFormatter from_plan(list segments, bytes hostname)
    # Appends the value to the module's scratch buffer.
    cdef int format(self, HttpHeaderMap request, StreamInfoImpl info) except -1


@cython.final
cdef class RouterHeaderMutations:
    """One level's header lists (route config, virtual host, route, weighted
    cluster): removals, then additions (overwrites first)."""
    cdef list remove                # bytes, lower-case
    cdef list remove_ids            # int Http1HeaderId
    cdef list add_names             # bytes, lower-case
    cdef list add_ids               # int Http1HeaderId
    cdef list add_values            # RouterHeaderFormatter
    cdef int count                  # additions
    cdef int *add_actions           # RouterAppendAction
    cdef int *add_keep_empty
    cdef size_t *offsets            # per addition, during apply: value in the scratch buffer
    cdef size_t *lengths
    cdef int *decisions
    cdef bint empty

    @staticmethod
    cdef RouterHeaderMutations from_plan(object plan, bytes hostname)
    # `request`: the map %REQ()% reads (the same map for request headers; may be None)
    cdef int apply(self, HttpHeaderMap headers, HttpHeaderMap request,
                   StreamInfoImpl info) except -1


@cython.final
cdef class RetryPolicyImpl:
    cdef int retry_on               # ROUTER_RETRY_ON_* bits; 0: no retries
    cdef int num_retries            # default 1
    cdef double per_try_timeout     # seconds, 0: none
    cdef double base_interval       # 0.025 default
    cdef double max_interval        # 10 x base default
    cdef int *retriable_status_codes
    cdef int retriable_status_codes_count
    cdef bint previous_hosts        # a retry avoids the hosts already tried
    cdef int host_selection_attempts    # picks past the first before giving in

    @staticmethod
    cdef RetryPolicyImpl from_plan(object plan)
    cdef bint retriable_status(self, int status) noexcept


@cython.final
cdef class RouterWeightedClusterEntry:
    cdef str name
    cdef ThreadLocalCluster cluster # None when unknown (validate_clusters: false)
    cdef uint64_t weight
    cdef uint64_t upto              # cumulative weight, this entry included
    cdef bytes host_rewrite_literal # None: none
    cdef RouterHeaderMutations request_mutations
    cdef RouterHeaderMutations response_mutations


@cython.final
cdef class RouteEntryImpl:
    cdef int kind                   # RouteKind
    cdef str name                   # Route.name ("" if none)
    cdef double timeout             # route timeout s (default 15.0; 0: none)
    cdef double idle_timeout        # -1: not set (HCM stream_idle_timeout applies), 0: off
    cdef RetryPolicyImpl retry_policy   # never None (retry_on 0 when no policy)
    # direct_response
    cdef int direct_status
    cdef bytes direct_body          # b"" if none
    # redirect
    cdef int redirect_status        # 301 default

    # --- matching
    cdef int path_kind              # RouterPathMatchKind
    cdef bytes path_value           # prefix / path / path_separated_prefix (lower-case when not case_sensitive)
    cdef bint case_sensitive
    cdef object path_regex          # RE2 for safe_regex
    cdef list header_matchers       # RouterHeaderMatcher
    cdef list query_matchers        # RouterQueryParameterMatcher

    # --- cluster selection
    cdef str cluster_name           # static cluster; None otherwise
    cdef ThreadLocalCluster cluster
    cdef bytes cluster_header       # lower-case; None when not used
    cdef int cluster_header_id
    cdef ClusterManagerImpl cluster_manager
    cdef list weighted              # RouterWeightedClusterEntry; None when not used
    cdef uint64_t total_weight
    cdef int cluster_not_found_response_code    # 503 default (404, 500)
    cdef list upgrade_types         # per-route upgrade_configs [(type lower-case, enabled)]; None: the HCM's

    # --- rewrites
    cdef bytes prefix_rewrite       # None: none
    cdef object regex_rewrite       # RE2; None: none
    cdef bytes regex_substitution   # as a Python re template
    cdef bytes host_rewrite_literal # None: none
    cdef bint auto_host_rewrite     # for the router: Host := the chosen host's hostname, when it has one
    cdef bint append_xfh            # a Host rewrite appends the old Host to x-forwarded-host
    cdef bint attempt_count_in_request      # x-envoy-attempt-count (the virtual host's flags)
    cdef bint attempt_count_in_response
    cdef bint ssl_redirect          # require_tls's redirect: https://<host as sent><path as sent>

    # --- redirect
    cdef bytes redirect_scheme      # None: keep
    cdef bytes redirect_host        # None: keep
    cdef bytes redirect_port        # b":8443"; None: keep
    cdef bytes redirect_path        # None: keep
    cdef bint redirect_path_has_query
    cdef bytes redirect_prefix_rewrite
    cdef object redirect_regex
    cdef bytes redirect_regex_substitution
    cdef bint strip_query

    # --- header mutations, in application order (Envoy's observed order)
    cdef list request_mutations     # RouterHeaderMutations
    cdef list response_mutations    # RouterHeaderMutations

    @staticmethod
    cdef RouteEntryImpl from_plan(FactoryContext ctx, object rp,
                                  RouterHeaderMutations vh_request, RouterHeaderMutations vh_response,
                                  RouterHeaderMutations rc_request, RouterHeaderMutations rc_response,
                                  bint most_specific_wins, bint validate_clusters, bytes hostname)

    cdef bint matches(self, HttpHeaderMap headers, uint64_t random_value) except -1

    # cluster selection: the static cluster, a weighted pick, or the
    # cluster_header's value; None -> cluster_not_found_response_code (503 NC)
    cdef ThreadLocalCluster cluster_for(self, HttpHeaderMap headers, uint64_t random_value)
    # The weighted entry random_value picks (None without weighted_clusters).
    cdef RouterWeightedClusterEntry weighted_entry(self, uint64_t random_value)
    # Header mutations (weighted cluster, then route, virtual host, route
    # config -- reversed by most_specific_header_mutations_wins), then
    # host_rewrite_literal (x-envoy-original-host) and prefix_rewrite /
    # regex_rewrite (x-envoy-original-path), the originals only when
    # keep_original (the router's suppress_envoy_headers is false).
    # `random_value`: the one given to cluster_for (weighted clusters).
    # `info` gives the formatter values.
    cdef int finalize_request_headers(self, HttpHeaderMap headers, StreamInfoImpl info,
                                      uint64_t random_value=*, bint keep_original=*) except -1
    # response_headers_to_add/remove at every level (upstream responses,
    # direct responses, redirects and the router's local replies);
    # `request`: the request headers, for %REQ()% (may be None).
    cdef int finalize_response_headers(self, HttpHeaderMap headers, StreamInfoImpl info,
                                       HttpHeaderMap request=*, uint64_t random_value=*) except -1
    # The redirect's Location value for this request; only for ROUTE_KIND_REDIRECT.
    cdef bytes redirect_location(self, HttpHeaderMap request_headers)
    cdef size_t _matched_len(self, HttpHeaderMap headers) noexcept
    cdef object _rewritten_path(self, HttpHeaderMap headers, bytes prefix_rewrite, object regex,
                                bytes substitution)


@cython.final
cdef class RouterVirtualHostImpl:
    cdef str name
    cdef list routes                # RouteEntryImpl, in order
    cdef int require_tls            # 0 none, 1 external only, 2 all (plan.REQUIRE_TLS)
    cdef RouteEntryImpl ssl_redirect    # 301 to https://<host><path> when require_tls applies


# A domain of a virtual host: points into a bytes object RouteConfigImpl keeps.
ctypedef struct RouterDomainEntry:
    const char *domain              # lower-case; NULL: empty hash slot
    size_t len
    uint64_t hash                   # exact domains only
    int vhost                       # index in RouteConfigImpl.vhosts


@cython.final
cdef class RouteConfigImpl:
    cdef str name
    cdef list vhosts                # RouterVirtualHostImpl
    cdef list domain_bytes          # keeps the domain strings alive
    cdef RouterDomainEntry *exact   # open addressing, exact_mask + 1 slots
    cdef uint64_t exact_mask
    cdef int exact_count
    cdef RouterDomainEntry *suffixes    # *.foo.com -> ".foo.com", longest first
    cdef int suffix_count
    cdef RouterDomainEntry *prefixes    # foo.* -> "foo.", longest first
    cdef int prefix_count
    cdef int any_vhost              # index of the "*" virtual host; -1
    cdef bint ignore_port_in_host_matching
    # Some header format reads %DOWNSTREAM_{REMOTE,LOCAL}_ADDRESS...%: the
    # connection manager then fills the stream info's addresses.
    cdef bint uses_downstream_addresses

    cdef RouterDomainEntry *_domain_array(self, list entries) except? NULL
    cdef int _build_exact(self, list entries) except -1
    # The compiled route table (virtual hosts by domain, routes in order).
    @staticmethod
    cdef RouteConfigImpl from_plan(FactoryContext ctx, object plan)   # RouteTablePlan
    cdef RouterVirtualHostImpl find_virtual_host(self, HttpHeaderMap headers)
    # The route for a request, or None (404 NR). Allocates nothing.
    # `random_value` serves weighted choices (runtime_fraction not supported).
    cdef RouteEntryImpl route(self, HttpHeaderMap headers, uint64_t random_value)
