# Tunables of the worker data plane, in one place (uvloop includes/consts.pxi).
cdef enum:
    # One buffer slice: 16 KiB, a multiple of the page size (Envoy's default slice).
    SLICE_SIZE = 16384
    # Slices kept in the per-worker freelist before they go back to malloc.
    SLICE_FREELIST_MAX = 4096
    # Slices stored inline in an OwnedBuffer before its ring is malloc'd.
    INLINE_SLICES = 4
    # Most iovecs one readv/writev takes.
    MAX_IOV = 64
    # Most bytes one read event takes once reads fill what they ask (bulk),
    # up to the connection's buffer limit: Envoy reads to its high watermark
    # (1 MiB by default). 64 KiB per read cost 393 CPU us per uploaded MiB
    # through the HTTP proxy, 1 MiB 168 (http_post_1m; HAProxy 286).
    READ_MAX_BYTES = 1048576
    # Events one epoll_wait returns.
    MAX_EPOLL_EVENTS = 256
    # Expired timers one loop turn runs before polling again.
    MAX_TIMERS_PER_TURN = 64
    TIMER_QUEUES = 8                # timeout durations with a FIFO queue
    # Connections one listener accepts per readiness event (batched accept4).
    ACCEPT_BATCH = 64
    # Batches a listener that stops for good accepts at most to empty its
    # queue first (the kernel caps a listen queue at somaxconn, 4096).
    STOP_ACCEPT_BATCHES = 128
    # Descriptors one control message may carry (the kernel's SCM_MAX_FD).
    MAX_CONTROL_FDS = 253
    # A read of at least this many bytes marks a tcp_proxy direction as bulk,
    # which switches it to splice() through a pipe.
    SPLICE_THRESHOLD = 65536
    # Pipe capacity asked for with F_SETPIPE_SZ for splice().
    SPLICE_PIPE_SIZE = 262144
    # HTTP/1 request head limits: Envoy's max_request_headers_kb and
    # max_headers_count defaults.
    HTTP1_MAX_HEADERS_KB = 60
    HTTP1_MAX_HEADERS_COUNT = 100
    # Closed connections (buffers, filter manager, transport socket) a worker
    # keeps for new ones.
    CONN_FREE_LIST_MAX = 256
    # Closed HTTP connection managers (with their stream, parser, buffers,
    # timers and filter wrappers) an HCM config keeps for new connections.
    HCM_FREE_LIST_MAX = 128
    HTTP_DRAIN_FIRST_REQUEST_GRACE_MS = 250  # a just-accepted connection's wait for its request when the listener drains
