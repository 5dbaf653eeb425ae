# Addresses as text, without stdio: inet_ntop formats IPv4 with sprintf
# (~1,700 instructions a call, once per connection), these with a few dozen.


cdef inline size_t format_uint(uint64_t v, char *out) noexcept:
    """v in decimal into out (>= 20 bytes, no NUL); returns the length."""
    cdef char tmp[24]
    cdef size_t n = 0, i
    if v == 0:
        out[0] = b'0'
        return 1
    while v:
        tmp[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
    for i in range(n):
        out[i] = tmp[n - 1 - i]
    return n


cdef size_t format_ip(const sockaddr_storage *addr, char *out) noexcept:
    """The address's IP as inet_ntop writes it, NUL-terminated, into out
    (>= 48 bytes); returns its length, 0 if not IPv4/IPv6."""
    cdef const unsigned char *a
    cdef size_t n = 0
    cdef int i
    if addr.ss_family == AF_INET:
        a = <const unsigned char *>&(<const sockaddr_in*>addr).sin_addr
        for i in range(4):
            if i:
                out[n] = b'.'
                n += 1
            n += format_uint(a[i], out + n)
        out[n] = 0
        return n
    if addr.ss_family == AF_INET6:
        if inet_ntop(AF_INET6, &(<const sockaddr_in6*>addr).sin6_addr, out, 48) == NULL:
            return 0
        return strlen(out)
    out[0] = 0
    return 0


cdef str _sockaddr_str(sockaddr_storage *addr):
    """"ip:port" ("[ip]:port" for IPv6), as Envoy prints addresses."""
    cdef char buf[80]
    cdef size_t n
    if addr.ss_family == AF_INET:
        n = format_ip(addr, buf)
        buf[n] = b':'
        n += 1 + format_uint(ntohs((<sockaddr_in*>addr).sin_port), buf + n + 1)
        return buf[:n].decode("ascii")
    if addr.ss_family == AF_INET6:
        buf[0] = b'['
        n = 1 + format_ip(addr, buf + 1)
        buf[n] = b']'
        buf[n + 1] = b':'
        n += 2 + format_uint(ntohs((<sockaddr_in6*>addr).sin6_port), buf + n + 2)
        return buf[:n].decode("ascii")
    return None
