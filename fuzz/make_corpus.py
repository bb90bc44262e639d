"""Write the seed corpora, ``fuzz/corpus/<target>/seed-*``: small inputs that reach
the interesting paths at once (valid frames both ways, every length form,
fragmented and compressed messages, handshakes). Deterministic: running it again
rewrites the same files. Findings promoted from fuzz runs live next to the seeds
as ``regress-*`` files and are never touched here.

    python -m fuzz.make_corpus
"""

from __future__ import annotations

import hashlib
import pathlib
import zlib

from fastws import _codec_py as codec
from fuzz.targets import (
    _INFLATE_MAX,
    _PROTOCOL_MAX_SIZES,
    MAX_SIZES,
    _handshake_request,
)

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
KEY = b"\x37\xfa\x21\x3d"


def split_spec(cuts=(), kinds=0) -> bytes:
    """The Splitter bytes: a count, two bytes per cut, the piece types."""
    return bytes([len(cuts)]) + b"".join(c.to_bytes(2, "big") for c in cuts) + bytes([kinds])


def frame(op, payload, *, fin=True, rsv1=False, masked=False):
    return codec.build_frame(op, payload, fin=fin, rsv1=rsv1, mask=KEY if masked else None)


def raw_header(b0, length_bytes, masked=False):
    return bytes([b0]) + length_bytes + (KEY if masked else b"")


def frame_parser_seeds():
    def seed(mask_required, allow_rsv1, max_size, wire, cuts=(), kinds=0):
        flags = int(mask_required) | (2 if allow_rsv1 else 0)
        return bytes([flags, MAX_SIZES.index(max_size)]) + split_spec(cuts, kinds) + wire

    m = True
    text = "Hello, wörld ✓ 🎉".encode()
    yield seed(m, False, None, frame(1, text, masked=m) + frame(2, bytes(range(200)), masked=m))
    yield seed(m, False, 1000, frame(1, text, fin=False, masked=m) + frame(9, b"ping", masked=m)
               + frame(0, text, masked=m), cuts=(1, 2, 3, 9, 30), kinds=0b10_01_00_10)
    yield seed(False, False, None, frame(2, b"x" * 300) + frame(10, b"pong") + frame(8, b"\x03\xe8bye"),
               cuts=(3, 4, 100), kinds=0b01_10_01)
    yield seed(False, True, 65536, frame(1, b"compressed?", rsv1=True, fin=False) + frame(0, b"more"))
    # every length form, with the payload cut short
    yield seed(m, False, None, raw_header(0x82, b"\xfe\x01\x00", m) + b"a" * 40, cuts=(2, 5))
    yield seed(m, False, 2**63 - 1, raw_header(0x82, b"\xff" + (70000).to_bytes(8, "big"), m) + b"b" * 64)
    yield seed(False, False, 125, raw_header(0x81, b"\x7e\x00\x7d") + b"c" * 125)  # not minimal
    yield seed(False, False, None, raw_header(0x82, b"\x7f" + (2**63).to_bytes(8, "big")))
    yield seed(m, False, 5, frame(1, b"too big", masked=m))
    yield seed(m, False, None, frame(1, b"ok", masked=m) + raw_header(0x8B, b"\x80", m))  # reserved opcode
    yield seed(m, False, None, frame(2, b"ok", masked=m) + frame(2, b"unmasked"))  # wrong direction
    yield seed(False, False, 0, frame(9, b"") + frame(1, b""))


def utf8_seeds():
    def seed(text, pad=None, repeat=1, cuts=(), kinds=0):
        flags = (1 if pad is not None else 0) | ((repeat - 1) << 1)
        head = bytes([flags]) + (bytes([pad]) if pad is not None else b"")
        return head + split_spec(cuts, kinds) + text

    yield seed(b"plain ascii text")
    yield seed("añ€𝄞 mixed ✓ text 🎉".encode(), pad=29, cuts=(30, 31, 33, 34), kinds=0b10011001)
    yield seed("Ωmega".encode() * 9, pad=1, repeat=4, cuts=(100, 128, 129))
    yield seed(b"\xed\xa0\x80 surrogate")
    yield seed(b"\xc0\xaf overlong \xe0\x80\xaf \xf0\x80\x80\xaf")
    yield seed(b"too large \xf4\x90\x80\x80 \xf5\x80")
    yield seed(b"truncated \xe2\x82", pad=31, cuts=(41,))
    yield seed(b"\xf0\x9f\x98\x80" * 16, pad=126, repeat=2, cuts=(127, 128, 129, 130))
    yield seed(b"a" * 95 + b"\xe2\x82\xac" + b"\x80")


def http_seeds():
    def request(data, limits=0, cuts=(), kinds=0):
        return bytes([0, limits]) + split_spec(cuts, kinds) + data

    def response(data, flags=0, limits=0, body=0, cuts=(), kinds=0):
        return bytes([1, flags, limits, body]) + split_spec(cuts, kinds) + data

    def grammar(text, flags=0):
        return bytes([2, flags]) + text.encode("latin-1")

    handshake = _handshake_request(True)
    yield request(handshake + b"\x81\x85" + KEY + b"early", cuts=(5, 20, 60))
    yield request(handshake.replace(b"client_max_window_bits", b"server_max_window_bits=10;"
                                    b" client_max_window_bits=9, permessage-deflate"))
    yield request(handshake.replace(b"GET", b"POST"), limits=4, cuts=(1,))
    yield request(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
    yield request(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    yield request(b"GET /" + b"a" * 40 + b" HTTP/1.1\r\nX: " + b"v" * 100 + b"\r\n\r\n", limits=1)
    yield request(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits=2)
    yield request(b"GET / HTTP/1.1\r\n folded\r\n\r\n")
    yield request(b"GET / HTTP/1.1\nHost: x\n\n")
    accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    ok = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: chat\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover;"
        " server_max_window_bits=10\r\n\r\n"
    ).encode()
    yield response(ok + b"\x81\x02hi", cuts=(10, 50))
    yield response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!")
    yield response(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n", cuts=(40, 60), body=2)
    yield response(b"HTTP/1.1 403 Forbidden\r\n\r\nbody until the end", flags=1, body=2)
    yield response(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx")
    yield grammar("permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\", x-foo")
    yield grammar("chat, superchat/1.0,, ", flags=1)
    yield grammar("user:pass@example.com:8080/path?query=1", flags=2)
    yield grammar("wss://[::1]:443/ä?x#frag")


def inflate_seeds():
    def frames_seed(frames, bits=15, no_context_takeover=False, max_size=None):
        flags = (bits - 8) | (8 if no_context_takeover else 0) | (_INFLATE_MAX.index(max_size) << 4)
        out = bytes([flags])
        for payload, fin in frames:
            out += bytes([int(fin) | 2]) + len(payload).to_bytes(2, "big") + payload
        return out

    def deflate(data, bits=15, flush=zlib.Z_SYNC_FLUSH):
        c = zlib.compressobj(6, zlib.DEFLATED, -(9 if bits == 8 else bits))
        out = c.compress(data) + c.flush(flush)
        return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out

    message = b"The quick brown fox jumps over the lazy dog. " * 20
    yield frames_seed([(deflate(message), True)], max_size=1000)
    yield frames_seed([(deflate(message, 8), True)], bits=8, max_size=None)
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    part1 = c.compress(message[:300]) + c.flush(zlib.Z_SYNC_FLUSH)
    part2 = c.compress(message[300:]) + c.flush(zlib.Z_SYNC_FLUSH)
    yield frames_seed([(part1, False), (part2[:-4], True), (deflate(b"next"), True)], bits=12,
                      max_size=65536)
    yield frames_seed([(deflate(b"\x00" * 100000), True)], max_size=1000)  # a small bomb
    yield frames_seed([(deflate(b"final", flush=zlib.Z_FINISH) + b"junk", True)], max_size=100)
    yield frames_seed([(deflate(bytes(range(256)) * 12), True)], no_context_takeover=True,
                      max_size=1 << 20)
    yield frames_seed([(b"\xff\xff\xff", True)], max_size=10)
    # round trips: flags | 0x80, min_size, then messages
    text = "Répété, répété, répété ✓".encode() * 5
    yield bytes([0x80 | 7 | (6 << 4), 10, 2]) + len(text).to_bytes(2, "big") + text + b"\x00\x05tail!"
    yield bytes([0x80 | 0 | 8, 0, 0]) + (5).to_bytes(2, "big") + b"short"


def protocol_seeds():
    def seed(mode, wire, *, handshake=False, deflate=False, defer=False, eof=False, bits=15,
             max_size=65536, cuts=(), kinds=0):
        flags = mode | (4 if handshake else 0) | (8 if deflate else 0) | (16 if defer else 0)
        extra = int(eof) | ((bits - 8) << 1)
        return (bytes([flags, extra, _PROTOCOL_MAX_SIZES.index(max_size)])
                + split_spec(cuts, kinds) + wire)

    m = True
    msgs = (frame(1, "héllo".encode(), masked=m) + frame(9, b"?", masked=m)
            + frame(2, b"\x00\x01", fin=False, masked=m) + frame(0, b"\x02", masked=m)
            + frame(8, codec.build_close(1000, "bye"), masked=m))
    yield seed(0, msgs, handshake=True, cuts=(7, 30))
    yield seed(0, _handshake_request(False) + msgs)
    yield seed(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", eof=True)
    yield seed(2, frame(1, b"\xce\xbb\xce", fin=False, masked=m) + frame(0, b"\xbb", masked=m), cuts=(9,))
    yield seed(2, frame(1, b"bad \xff utf8", masked=m) + frame(2, b"after", masked=m), defer=True)
    yield seed(2, frame(2, b"x" * 200, masked=m), max_size=125)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    compressed = (c.compress(b"compressed " * 30) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    yield seed(2, frame(1, compressed, rsv1=True, masked=m), deflate=True, max_size=1000)
    yield seed(0, frame(1, compressed, rsv1=True, masked=m), handshake=True, deflate=True)
    yield seed(3, frame(1, b"from server") + frame(8, b"\x03\xe9"), eof=True)
    yield seed(1, frame(1, b"hi") + frame(10, b"pong"), handshake=True, cuts=(3,))
    yield seed(1, frame(1, compressed, rsv1=True), handshake=True, deflate=True)
    yield seed(1, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    yield seed(2, frame(8, b"\x03"), max_size=None)  # 1-byte close payload


SEEDS = {
    "frame_parser": frame_parser_seeds,
    "utf8": utf8_seeds,
    "http": http_seeds,
    "inflate": inflate_seeds,
    "protocol": protocol_seeds,
}


def main() -> None:
    for target, make in SEEDS.items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("seed-*"):
            old.unlink()
        count = 0
        for data in make():
            name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
            (directory / name).write_bytes(data)
            count += 1
        print(f"{target}: {count} seeds in {directory}")


if __name__ == "__main__":
    main()
