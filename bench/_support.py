"""Helpers shared by the benchmark modules: test data, a reference frame codec
written independently of the code under test, and the bookkeeping that the
report (``bench/report.py``) reads from each benchmark's ``extra_info``.

Nothing here is timed. The reference codec is deliberately simple and slow: it
only checks, once per benchmark and outside the timed loop, that a kernel
produced the right answer, so that a broken kernel cannot look fast.
"""

from __future__ import annotations

import random
import struct

import pytest

KiB = 1024
MiB = 1024 * KiB

# Order of the kernels in the report.
KERNELS = ("mask", "utf8", "parse", "build")

# A fixed masking key for the masking benchmarks (any 4 bytes do).
MASK_KEY = b"\x37\xfa\x21\x3d"

OP_TEXT = 0x1
OP_BINARY = 0x2


def size_label(n: int) -> str:
    """16 -> '16 B', 1024 -> '1 KiB', 65536 -> '64 KiB', 1048576 -> '1 MiB'."""
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    if n >= KiB and n % KiB == 0:
        return f"{n // KiB} KiB"
    return f"{n} B"


def size_id(n: int) -> str:
    """Like :func:`size_label`, without the space (for pytest ids)."""
    return size_label(n).replace(" ", "")


def random_bytes(n: int, seed: int) -> bytes:
    """``n`` pseudo-random bytes, the same on every run."""
    return random.Random(seed).randbytes(n)


def require_attr(obj, name: str, what: str):
    """``getattr(obj, name)`` or skip the test (the compiled core is written piece
    by piece: a missing function is reported, not an error)."""
    try:
        return getattr(obj, name)
    except AttributeError:
        pytest.skip(f"{what} has no {name!r}")


# --- reference masking ------------------------------------------------------------

_XOR_TABLES = [bytes(a ^ b for a in range(256)) for b in range(256)]


def ref_mask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with ``key`` repeated, one stride of 4 bytes per key byte
    (``bytes.translate``: a different technique from every kernel measured)."""
    out = bytearray(data)
    for i in range(4):
        out[i::4] = out[i::4].translate(_XOR_TABLES[key[i]])
    return bytes(out)


# --- reference frame codec ---------------------------------------------------------


def ref_encode_frame(opcode: int, payload: bytes, key: bytes | None = None, fin: bool = True) -> bytes:
    """Serialize one frame; masked with ``key`` when it is given."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if key is not None else 0
    if n < 126:
        header = struct.pack("!BB", b0, mask_bit | n)
    elif n < 0x10000:
        header = struct.pack("!BBH", b0, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", b0, mask_bit | 127, n)
    if key is None:
        return header + payload
    return header + key + ref_mask(payload, key)


def ref_decode_frames(data: bytes) -> list[tuple[bool, int, bool, bytes]]:
    """Parse a buffer of complete frames into ``(fin, opcode, masked, payload)``."""
    data = bytes(data)
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        pos += 2
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif n == 127:
            (n,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        masked = bool(b1 & 0x80)
        if masked:
            key = data[pos : pos + 4]
            pos += 4
            payload = ref_mask(data[pos : pos + n], key)
        else:
            payload = data[pos : pos + n]
        if len(payload) != n:
            raise AssertionError(f"truncated frame: {len(payload)} of {n} payload bytes")
        pos += n
        frames.append((bool(b0 & 0x80), b0 & 0x0F, masked, payload))
    return frames


def check_built_frame(output, payload: bytes, masked: bool) -> None:
    """Assert that ``output`` (bytes-like) is exactly one final binary frame
    carrying ``payload``, masked or not as asked."""
    frames = ref_decode_frames(bytes(output))
    assert len(frames) == 1, f"expected one frame, got {len(frames)}"
    fin, opcode, was_masked, got = frames[0]
    assert fin and opcode == OP_BINARY, (fin, opcode)
    assert was_masked == masked, f"mask bit is {was_masked}, expected {masked}"
    assert got == payload, "payload differs after unmasking"


def masked_frame_buffer(count: int, payload_size: int, seed: int) -> tuple[bytes, list[bytes]]:
    """``count`` masked binary frames of ``payload_size`` random bytes, each with
    its own random key, as one buffer (what a server reads from a client).
    Returns the buffer and the payloads it carries."""
    rng = random.Random(seed)
    payloads = [rng.randbytes(payload_size) for _ in range(count)]
    buf = b"".join(ref_encode_frame(OP_BINARY, p, rng.randbytes(4)) for p in payloads)
    return buf, payloads


# --- UTF-8 test data ---------------------------------------------------------------

# 2-byte (Latin-1 accents, Cyrillic), 3-byte (CJK) and 4-byte (emoji) sequences,
# with some ASCII spaces and punctuation, as in real mixed-language text.
_MIXED_TEXT = (
    "Ça déjà vu, señor Müller? "
    "Съешь же ещё этих мягких французских булок. "
    "我能吞下玻璃而不伤身体。 "
    "日本語のテキスト "
    "😀🎉🚀🌍✨ "
)
_ASCII_TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    '{"id": 12345, "event": "message", "ok": true}\n'
)


def _fill(text: str, size: int) -> bytes:
    """``text`` repeated, encoded to UTF-8 and cut to exactly ``size`` bytes on a
    code point boundary (padded with ASCII where the cut falls in a sequence)."""
    unit = text.encode("utf-8")
    data = unit * (size // len(unit) + 1)
    cut = size
    while cut > 0 and (data[cut] & 0xC0) == 0x80:  # data[cut] continues a sequence
        cut -= 1
    data = data[:cut] + b" " * (size - cut)
    assert len(data) == size
    return data


def utf8_data(kind: str, size: int) -> tuple[bytes, bool]:
    """Test data for the UTF-8 benchmarks and whether it is valid."""
    if kind == "ascii":
        return _fill(_ASCII_TEXT, size), True
    if kind == "mixed":
        return _fill(_MIXED_TEXT, size), True
    if kind == "invalid-end":
        return _fill(_MIXED_TEXT, size - 1) + b"\xff", False
    raise ValueError(kind)


# --- stand-ins for the I/O objects of peers' connection classes -------------------


class FlowControlStub:
    """Just enough of aiohttp's BaseProtocol for WebSocketDataQueue's flow control."""

    _reading_paused = False
    _paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False


class FakeTransport:
    """A write-only asyncio transport that keeps the last thing written."""

    def __init__(self) -> None:
        self.last = b""
        self.chunks: list = []
        self.keep_all = False

    def write(self, data) -> None:
        self.last = data
        if self.keep_all:
            self.chunks.append(bytes(data))

    def writelines(self, lines) -> None:
        for data in lines:
            self.write(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        # Non-zero: picows then hands the frame to write() instead of calling
        # send(2) on the socket's file descriptor itself.
        return 1

    def get_extra_info(self, name, default=None):
        if name == "socket":
            return _NoSocket()
        return default


class _NoSocket:
    def fileno(self) -> int:
        return -1


# --- bookkeeping read by report.py -------------------------------------------------


def describe(
    benchmark,
    *,
    kernel: str,
    case: str,
    order: float,
    impl: str,
    baseline: str,
    bytes_per_call: int | None = None,
    frames_per_call: int | None = None,
    primary: str = "bytes",
    note: str | None = None,
    variant: str = "",
) -> None:
    """Put a benchmark in its group and record what the report needs.

    ``case`` names the group within the kernel ("64 KiB", "mixed 1 KiB"...);
    ``order`` sorts the groups of a kernel; ``impl`` is the row's display name;
    ``baseline`` the display name of the group's reference row; ``primary``
    ("bytes" or "frames") which throughput the report shows; ``variant`` sets apart
    rows that the report's summary must not compare with the others ("inplace").
    """
    benchmark.group = f"{kernel} | {case}"
    info = benchmark.extra_info
    info["kernel"] = kernel
    info["case"] = case
    info["order"] = order
    info["impl"] = impl
    info["baseline"] = baseline
    info["primary"] = primary
    if bytes_per_call is not None:
        info["bytes_per_call"] = bytes_per_call
    if frames_per_call is not None:
        info["frames_per_call"] = frames_per_call
    if note:
        info["note"] = note
    if variant:
        info["variant"] = variant


def record_throughput(benchmark) -> None:
    """After the timed run: store GB/s and frames/s (from the mean) in extra_info."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: nothing was timed
        return
    mean = stats.stats.mean
    info = benchmark.extra_info
    if mean > 0:
        if "bytes_per_call" in info:
            info["gb_per_s"] = info["bytes_per_call"] / mean / 1e9
        if "frames_per_call" in info:
            info["frames_per_s"] = info["frames_per_call"] / mean
