"""Reference leaks in the compiled codec, measured with tracemalloc.

scripts/asan.sh finds leaked memory blocks with LeakSanitizer, but an object
whose reference count was raised by mistake and that the cyclic GC tracks
(a Frame, a list, an exception) stays reachable from the GC's lists and is
never reported. This test runs every codec entry point, on valid input and on
each error path, a few thousand times, and checks that the memory traced by
tracemalloc does not grow with the number of calls.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from conftest import load_speedups

KEY = b"\x01\x02\x03\x04"
ROUNDS = 2000
#: Allowed growth over ROUNDS calls: caches and freelists warm up, but a leak
#: of one small object per call is ROUNDS * 33+ bytes.
SLACK = 16 * 1024


def growth(func, rounds=ROUNDS) -> int:
    for _ in range(50):  # warm up caches, freelists, interned strings
        func()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            func()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def workloads(cy):
    from fastws.exceptions import ProtocolError

    masked = cy.build_frame(1, "héllo wörld" * 10, mask=KEY)
    wire = masked + cy.build_frame(9, b"ping", mask=KEY) + cy.build_frame(2, b"x" * 70000, mask=KEY)

    def parse_whole():
        cy.FrameParser(mask_required=True).feed(wire)

    def parse_in_pieces():
        p = cy.FrameParser(mask_required=True)
        for i in range(0, len(wire), 997):
            p.feed(memoryview(wire)[i : i + 997])
            p.pending()
            p.pending_payload(3)

    def parse_error():
        p = cy.FrameParser(mask_required=True, max_size=1000)
        try:
            p.feed(masked + b"\x82\xfe\x10\x00")
        except ProtocolError as exc:
            assert len(exc.frames) == 1
        try:
            p.feed(b"\x81\x80")
        except ProtocolError:
            pass

    def parse_abandoned():
        p = cy.FrameParser(mask_required=True)
        p.feed(wire[:-10])  # a payload in progress when the parser goes away

    def utf8():
        text = "añ€𝄞".encode() * 50
        cy.validate_utf8(text)
        cy.validate_utf8(bytearray(text))
        v = cy.Utf8Validator()
        v.feed(text[:7])
        v.feed(memoryview(text)[7:])
        v.feed(b"\xff")
        if hasattr(cy, "scan_utf8"):
            cy.scan_utf8(text[:5])
            cy.scan_utf8(b"\xed\xa0", b"")

    def masking():
        cy.apply_mask(b"y" * 300, KEY)
        buf = bytearray(300)
        cy.apply_mask_inplace(buf, KEY, 1)
        cy.apply_mask_inplace(memoryview(buf)[3:], KEY)

    def building():
        cy.build_frame(1, "text ✓", mask=True)
        cy.build_frame(2, memoryview(b"z" * 200), mask=KEY, fin=False)
        try:
            cy.build_frame(9, b"p" * 200)
        except ValueError:
            pass

    def closing():
        cy.parse_close(cy.build_close(1000, "bye ✓"))
        for bad in (b"\x03", b"\x03\xe8\xff", b"\x00\x01"):
            try:
                cy.parse_close(bad)
            except ProtocolError:
                pass
        try:
            cy.build_close(1005, "x")
        except ValueError:
            pass

    return {f.__name__: f for f in (parse_whole, parse_in_pieces, parse_error, parse_abandoned,
                                     utf8, masking, building, closing)}


NAMES = ["parse_whole", "parse_in_pieces", "parse_error", "parse_abandoned", "utf8", "masking",
         "building", "closing"]


@pytest.mark.parametrize("name", NAMES)
def test_no_reference_leak(name):
    cy = load_speedups()
    func = workloads(cy)[name]
    grew = growth(func)
    assert grew < SLACK, f"{name}: {grew} bytes more after {ROUNDS} calls"


def test_the_measure_sees_a_leak():
    kept = []
    grew = growth(lambda: kept.append(object()))
    assert grew >= ROUNDS * 16
