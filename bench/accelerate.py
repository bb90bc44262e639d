"""Other libraries before and after ``fastws.accelerate`` patches them, in one run.

    python -m bench.accelerate                 # every installed library, ~0.3 s per measure
    python -m bench.accelerate --time 1 --json accelerate.json
    python -m bench.accelerate --libraries wsproto,tornado

For each library, the same call through the library's own entry point (the
attribute its code looks up) is timed unpatched, then patched, then checked to
give the same result. Rows:

- wsproto: ``XorMaskerSimple.process`` (64 KiB), ``FrameProtocol`` parsing 1000
  masked 16 B frames (frames/s) and 64 masked 64 KiB frames (GB/s of wire bytes),
  as a server does (``receive_bytes`` + ``received_frames``);
- autobahn: ``create_xor_masker(mask, n).process`` (16 B and 64 KiB) and
  ``Utf8Validator().validate`` (64 KiB of mixed-language text), against
  Autobahn's active implementation (NVX native code when built);
- tornado: ``_websocket_mask`` (64 KiB), against tornado.speedups when built;
- websockets, aiohttp: their pure-Python ``apply_mask``/``websocket_mask`` (the
  code that runs without their extensions, as on PyPy) against the patched one,
  with their compiled version as a reference row;
- ws4py: ``Frame.unmask`` and the UTF-8 validator (4 KiB: its pure-Python loops
  are slow).

Each figure is the best of ``--repeat`` measures of ``--time`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench._support import masked_frame_buffer  # noqa: E402

KEY = b"\x37\xfa\x21\x3d"
KiB = 1024
TEXT = ("Ça déjà vu, señor Müller? 我能吞下玻璃而不伤身体。 😀🎉 The quick brown fox. " * 2000).encode()


class Row:
    def __init__(self, library: str, what: str, unit: str, units_per_call: float) -> None:
        self.library, self.what, self.unit, self.units_per_call = library, what, unit, units_per_call
        self.before: Optional[float] = None
        self.after: Optional[float] = None
        #: Every run's figure, unpatched and patched (``before`` and ``after`` are the best).
        self.samples: Dict[str, List[float]] = {"before": [], "after": []}
        self.note = ""

    def as_dict(self) -> Dict[str, Any]:
        return {
            "library": self.library,
            "what": self.what,
            "unit": self.unit,
            "before": self.before,
            "after": self.after,
            "speedup": (self.after / self.before) if self.before and self.after else None,
            "before_samples": self.samples["before"],
            "after_samples": self.samples["after"],
            "note": self.note,
        }


def rates(fn: Callable[[], Any], seconds: float, repeat: int) -> List[float]:
    """Calls per second of each of ``repeat`` runs of about ``seconds`` each."""
    fn()
    out = []
    for _ in range(repeat):
        n = 0
        batch = 1
        start = time.perf_counter()
        while True:
            for _ in range(batch):
                fn()
            n += batch
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
            batch = min(batch * 2, 1 << 16)
        out.append(n / elapsed)
    return out


def _fmt(value: Optional[float], unit: str) -> str:
    if value is None:
        return "-"
    if unit == "GB/s":
        return f"{value:.2f} GB/s" if value >= 0.1 else f"{value * 1000:.1f} MB/s"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M {unit}"
    return f"{value / 1e3:.1f} k {unit}"


class Bench:
    def __init__(self, seconds: float, repeat: int) -> None:
        self.seconds, self.repeat = seconds, repeat
        self.rows: List[Row] = []

    def measure(self, row: Row, phase: str, fn: Callable[[], Any]) -> Any:
        scale = row.units_per_call / (1e9 if row.unit == "GB/s" else 1)
        values = [r * scale for r in rates(fn, self.seconds, self.repeat)]
        row.samples[phase] = values
        setattr(row, phase, max(values))
        return fn()

    def pair(self, library: str, what: str, unit: str, units: float, get: Callable[[], Callable[[], Any]],
             patch: Callable[[], Any], unpatch: Callable[[], Any],
             same: Callable[[Any, Any], bool] = lambda a, b: a == b) -> Row:
        """Time ``get()`` (a call through the library) unpatched, then patched."""
        row = Row(library, what, unit, units)
        unpatch()
        expected = self.measure(row, "before", get())
        result = patch()
        assert result.active, f"{library} not patched: {result.reason}"
        try:
            got = self.measure(row, "after", get())
        finally:
            unpatch()
        assert same(expected, got), f"{library} {what}: patched result differs"
        self.rows.append(row)
        return row


def bench_wsproto(b: Bench, acc: Any) -> None:
    import wsproto.frame_protocol as fp

    data = os.urandom(64 * KiB)

    def get_masker() -> Callable[[], Any]:
        masker = fp.XorMaskerSimple(KEY)  # made after the patch (or the unpatch)
        return lambda: masker.process(data)

    b.pair("wsproto", "mask 64 KiB (XorMaskerSimple)", "GB/s", len(data),
           get_masker, acc.patch_wsproto, acc.unpatch_wsproto)
    for count, size, unit in ((1000, 16, "frames/s"), (64, 64 * KiB, "GB/s")):
        buf, payloads = masked_frame_buffer(count, size, seed=count + size)

        def get(buf: bytes = buf) -> Callable[[], Any]:
            cls = fp.FrameProtocol

            def parse() -> List[bytes]:
                proto = cls(client=False, extensions=[])
                proto.receive_bytes(buf)
                return [f.payload for f in proto.received_frames()]

            return parse

        units = count if unit == "frames/s" else len(buf)
        row = b.pair("wsproto", f"parse {count} x {size if size < KiB else str(size // KiB) + ' Ki'}B (FrameProtocol)",
                     unit, units, get, acc.patch_wsproto, acc.unpatch_wsproto)
        assert len(payloads) == count
        row.note = "server side, one receive_bytes"


def bench_autobahn(b: Bench, acc: Any) -> None:
    import autobahn.websocket
    import autobahn.websocket.protocol as protocol

    impl = "NVX" if getattr(autobahn.websocket, "USES_NVX", False) else "pure Python"
    for size in (16, 64 * KiB):
        data = os.urandom(size)
        unit = "frames/s" if size < KiB else "GB/s"
        row = b.pair("autobahn", f"mask {size if size < KiB else '64 Ki'}B (create_xor_masker().process)", unit,
                     1 if unit == "frames/s" else size,
                     lambda size=size, data=data: (lambda: protocol.create_xor_masker(KEY, size).process(data)),
                     acc.patch_autobahn, acc.unpatch_autobahn)
        row.note = f"before: Autobahn's {impl}"
    row = b.pair("autobahn", "UTF-8 validate 64 KiB text (Utf8Validator)", "GB/s", 64 * KiB,
                 lambda: (lambda: protocol.Utf8Validator().validate(TEXT[: 64 * KiB - 2])),
                 acc.patch_autobahn, acc.unpatch_autobahn)
    row.note = f"before: Autobahn's {impl}"


def bench_tornado(b: Bench, acc: Any) -> None:
    import tornado.util
    import tornado.websocket

    data = os.urandom(64 * KiB)
    speedups = tornado.util._websocket_mask is not tornado.util._websocket_mask_python
    row = b.pair("tornado", "mask 64 KiB (_websocket_mask)", "GB/s", len(data),
                 lambda: (lambda f=tornado.websocket._websocket_mask: f(KEY, data)),
                 acc.patch_tornado, acc.unpatch_tornado)
    row.note = "before: tornado.speedups (C)" if speedups else "before: pure Python"


def bench_websockets(b: Bench, acc: Any) -> None:
    import websockets.frames
    import websockets.utils

    from fastws import codec

    data = os.urandom(64 * KiB)
    row = Row("websockets", "apply_mask 64 KiB, pure fallback", "GB/s", len(data))
    expected = b.measure(row, "before", lambda: websockets.utils.apply_mask(data, KEY))
    # What patch_websockets() installs where the speedups are missing.
    assert b.measure(row, "after", lambda: codec.apply_mask(data, KEY)) == expected
    row.note = "patched when websockets.speedups is missing"
    b.rows.append(row)
    if websockets.frames.apply_mask is not websockets.utils.apply_mask:
        ref = Row("websockets", "apply_mask 64 KiB, speedups (C), reference", "GB/s", len(data))
        b.measure(ref, "before", lambda: websockets.frames.apply_mask(data, KEY))
        b.measure(ref, "after", lambda: codec.apply_mask(data, KEY))
        ref.note = "not patched by default (force=True)"
        b.rows.append(ref)


def bench_aiohttp(b: Bench, acc: Any) -> None:
    import aiohttp._websocket.helpers as helpers

    from fastws.accelerate._aiohttp import websocket_mask

    data = bytearray(os.urandom(64 * KiB))
    row = Row("aiohttp", "websocket_mask 64 KiB, pure fallback", "GB/s", len(data))
    b.measure(row, "before", lambda: helpers._websocket_mask_python(KEY, data))
    b.measure(row, "after", lambda: websocket_mask(KEY, data))
    row.note = "patched when aiohttp's extension is missing"
    b.rows.append(row)
    if helpers.websocket_mask is not helpers._websocket_mask_python:
        ref = Row("aiohttp", "websocket_mask 64 KiB, extension (C), reference", "GB/s", len(data))
        b.measure(ref, "before", lambda: helpers.websocket_mask(KEY, data))
        b.measure(ref, "after", lambda: websocket_mask(KEY, data))
        ref.note = "not patched by default (force=True)"
        b.rows.append(ref)


def bench_ws4py(b: Bench, acc: Any) -> None:
    import ws4py.framing
    import ws4py.streaming

    data = os.urandom(4 * KiB)
    frame = ws4py.framing.Frame(masking_key=KEY)
    b.pair("ws4py", "unmask 4 KiB (Frame.unmask)", "GB/s", len(data),
           lambda: (lambda: frame.unmask(data)), acc.patch_ws4py, acc.unpatch_ws4py)
    text = TEXT[: 4 * KiB - 1]
    b.pair("ws4py", "UTF-8 validate 4 KiB text (Utf8Validator)", "GB/s", len(text),
           lambda: (lambda: ws4py.streaming.Utf8Validator().validate(text)), acc.patch_ws4py, acc.unpatch_ws4py,
           # ws4py reads only (valid, endsOnCodePoint); its own validator reports
           # len - 1 as the index of valid input, wsaccel's (and fastws's) len
           same=lambda a, b: a[:2] == b[:2])


BENCHES = {
    "wsproto": bench_wsproto,
    "autobahn": bench_autobahn,
    "tornado": bench_tornado,
    "websockets": bench_websockets,
    "aiohttp": bench_aiohttp,
    "ws4py": bench_ws4py,
}


def print_table(rows: List[Row]) -> None:
    header = ("library", "measure", "before", "after", "speed-up", "note")
    lines = [
        (r.library, r.what, _fmt(r.before, r.unit), _fmt(r.after, r.unit),
         f"{r.after / r.before:.1f}x" if r.before and r.after else "-", r.note)
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for line in lines:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accelerate", description=__doc__.split("\n")[0])
    parser.add_argument("--time", type=float, default=0.3, help="seconds per measure (default 0.3)")
    parser.add_argument("--repeat", type=int, default=3, help="measures per figure, best kept (default 3)")
    parser.add_argument("--libraries", default=",".join(BENCHES), help="comma-separated subset")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    import importlib.util
    import platform

    import fastws
    import fastws.accelerate as acc

    print(f"fastws {fastws.__version__} ({fastws.IMPLEMENTATION}), Python {platform.python_version()}, "
          f"{platform.machine()}", flush=True)
    if fastws.IMPLEMENTATION != "cython":
        print("note: fastws's compiled core is not active: patches run the pure-Python twin")
    b = Bench(args.time, args.repeat)
    missing = []
    for name in args.libraries.split(","):
        name = name.strip()
        if importlib.util.find_spec(name) is None:
            missing.append(name)
            continue
        BENCHES[name](b, _AllowPure(acc))
    print()
    print_table(b.rows)
    if missing:
        print(f"\nnot installed: {', '.join(missing)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.as_dict() for r in b.rows], f, indent=2)
    return 0


class _AllowPure:
    """fastws.accelerate with allow_pure=True on every patch function (so that
    the benchmark also runs, unaccelerated, on the pure-Python twin)."""

    def __init__(self, acc: Any) -> None:
        self._acc = acc

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._acc, name)
        if name.startswith("patch_"):
            return lambda: fn(allow_pure=True)
        return fn


if __name__ == "__main__":
    sys.exit(main())
