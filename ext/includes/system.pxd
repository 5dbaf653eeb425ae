# cdef extern declarations only: the libc and kernel calls of the data plane.
from libc.stdint cimport uint32_t, uint64_t, int64_t

cdef extern from "debug.h":
    cdef int EF_DEBUG

cdef extern from "<errno.h>" nogil:
    int errno
    enum:
        EAGAIN
        EWOULDBLOCK
        EINTR
        EINPROGRESS
        ECONNREFUSED
        ECONNRESET
        EPIPE
        EMFILE
        ENFILE
        ENOBUFS
        ENOMEM
        ECONNABORTED
        ETIMEDOUT
        EINVAL

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64

    struct epoll_event:
        uint32_t events
        epoll_data_t data

    enum:
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLLRDHUP
        EPOLLET
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL
        EPOLL_CLOEXEC

    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len
    ssize_t readv(int fd, const iovec *iov, int iovcnt)
    ssize_t writev(int fd, const iovec *iov, int iovcnt)

cdef extern from "<unistd.h>" nogil:
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)
    int close(int fd)
    int pipe2(int pipefd[2], int flags)

cdef extern from "<fcntl.h>" nogil:
    enum:
        O_NONBLOCK
        O_CLOEXEC
        F_SETPIPE_SZ
        F_GETPIPE_SZ
        SPLICE_F_MOVE
        SPLICE_F_NONBLOCK
        SPLICE_F_MORE
    int fcntl(int fd, int cmd, ...)
    ssize_t splice(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    enum:
        AF_INET
        AF_INET6
        SOCK_STREAM
        SOCK_NONBLOCK
        SOCK_CLOEXEC
        SOL_SOCKET
        SO_ERROR
        SO_RCVBUF
        SO_SNDBUF
        SHUT_WR
        SHUT_RD
        SHUT_RDWR
        MSG_NOSIGNAL
        MSG_DONTWAIT
        MSG_PEEK
    int socket(int domain, int type, int protocol)
    int connect(int fd, const sockaddr *addr, socklen_t addrlen)
    int accept4(int fd, sockaddr *addr, socklen_t *addrlen, int flags)
    int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
    int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
    int getsockname(int fd, sockaddr *addr, socklen_t *addrlen)
    int shutdown(int fd, int how)
    ssize_t recv(int fd, void *buf, size_t len, int flags)
    ssize_t send(int fd, const void *buf, size_t len, int flags)

cdef extern from "<netinet/in.h>" nogil:
    enum:
        IPPROTO_TCP
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        unsigned short sin_port
        in_addr sin_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in6:
        sa_family_t sin6_family
        unsigned short sin6_port
        in6_addr sin6_addr
    uint32_t ntohl(uint32_t)
    unsigned short ntohs(unsigned short)

cdef extern from "<arpa/inet.h>" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    int inet_pton(int af, const char *src, void *dst)

cdef extern from "<netinet/tcp.h>" nogil:
    enum:
        TCP_NODELAY

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    enum:
        CLOCK_MONOTONIC
        CLOCK_MONOTONIC_COARSE
        CLOCK_REALTIME
    int clock_gettime(int clk, timespec *ts)

cdef extern from "<sys/prctl.h>" nogil:
    enum:
        PR_SET_PDEATHSIG
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)

cdef extern from "<string.h>" nogil:
    void *memcpy(void *dest, const void *src, size_t n)
    void *memmove(void *dest, const void *src, size_t n)
    void *memset(void *s, int c, size_t n)
    void *memchr(const void *s, int c, size_t n)
    void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen)
    int memcmp(const void *s1, const void *s2, size_t n)
    char *strerror(int errnum)

cdef extern from "<stdlib.h>" nogil:
    void *malloc(size_t size)
    void *realloc(void *ptr, size_t size)
    void free(void *ptr)
    void abort()

cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil

cdef extern from "atomics.h" nogil:
    int64_t ef_atomic_add(int64_t *p, int64_t v)
    int64_t ef_atomic_load(int64_t *p)
