"""atheris fuzz target for the HTTP/1 codec: request and response streams
(head parser + body decoder, as the HCM and the upstream codec drive them).

    python tests/fuzz/fuzz_http1.py -runs=1000000
    python tests/fuzz/fuzz_http1.py -max_total_time=20

The Cython code is not coverage-instrumented, so inputs are made useful by
structure: each input seeds a PRNG that picks a well-formed seed message and
mutates it (replace / insert / delete bytes, splice another seed); the result is
decoded whole, split at a fuzzed offset, and byte by byte when short. Any
exception, or any difference between those three, is a crash."""
import os
import random
import sys

import atheris

# Run from a checkout: the package (built in place) is two levels up.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

with atheris.instrument_imports():
    from envoy_fast._worker import Http1MessageStreamForTest

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"GET http://ex.com:8080/p?q HTTP/1.1\r\nX: a\r\n b\r\nY: c\rd\r\n\r\n",
    b"OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\nX_Y: 1\r\n\r\n",
    b"\r\nPUT /x HTTP/1.1\nHost: a\nContent-Length: 2\n\nabGET / HTTP/1.1\r\n\r\n",
    b"CONNECT ex.com:443 HTTP/1.1\r\nHost: ex.com:443\r\n\r\n",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nHTTP/1.1 2000 X\r\n\r\n",
]
ALPHABET = b"\r\n :;\t0123456789abcdefxX_-/*?\x00\x7f\x80\xff"


def mutate(rnd, seeds):
    data = bytearray(rnd.choice(seeds))
    for _ in range(rnd.choice((0, 1, 1, 1, 2, 2, 3, 4, 8))):
        op = rnd.randint(0, 4)
        pos = rnd.randint(0, len(data))
        if op == 0 and pos < len(data):
            data[pos] = rnd.randint(0, 255)
        elif op == 1:
            data[pos:pos] = bytes([rnd.choice(ALPHABET)])
        elif op == 2:
            del data[pos:pos + rnd.randint(1, 4)]
        elif op == 3:
            data[pos:pos] = rnd.choice(seeds)
        else:
            data[pos:pos] = rnd.randbytes(rnd.randint(0, 8))
    return bytes(data)


def decode(is_request, data, cuts, heads):
    s = Http1MessageStreamForTest(is_request, True, heads, 2, 20)
    out = []
    prev = 0
    for c in cuts + [len(data)]:
        out += s.feed(data[prev:c])
        prev = c
    out += s.eof()
    return out


def TestOneInput(raw):
    # Without coverage feedback from the Cython code, libFuzzer's inputs stay
    # alike; seeding a PRNG with the whole input spreads them out (and keeps
    # each input reproducible).
    rnd = random.Random(raw)
    is_request = rnd.random() < 0.5
    heads = [rnd.random() < 0.3 for _ in range(3)]
    data = mutate(rnd, REQUESTS if is_request else RESPONSES)
    if rnd.random() < 0.2:
        data += raw[:64]
    whole = decode(is_request, data, [], heads)
    k = rnd.randint(0, len(data))
    if decode(is_request, data, [k], heads) != whole:
        raise AssertionError("split at %d differs: %r" % (k, data))
    if len(data) <= 256 and decode(is_request, data, list(range(1, len(data))), heads) != whole:
        raise AssertionError("byte by byte differs: %r" % (data,))
    for m in whole:
        if isinstance(m, dict) and m["head"]["content_length"] is not None \
                and m["head"].get("body_mode", "content_length") == "content_length" \
                and not m["head"].get("status", 200) in (204, 304) and len(m["body"]) > m["head"]["content_length"]:
            raise AssertionError("body beyond Content-Length: %r" % (data,))


def main(argv=None):
    atheris.Setup(sys.argv if argv is None else argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
