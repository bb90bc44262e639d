"""The fuzz targets (fuzz/targets.py), bounded and deterministic, for CI.

Every target runs over its committed corpus (``fuzz/corpus/<target>/``: the
seeds, and the ``regress-*`` inputs that fuzz runs found), then over mutants of
the corpus from a fixed random seed (``FASTWS_FUZZ_EXAMPLES`` per target, 300
by default). The long, coverage-guided run is ``python -m fuzz.run`` (see
fuzz/run.py). The last tests break fastws on purpose and check that each target
notices, so that a target that checks nothing cannot pass unseen.
"""

from __future__ import annotations

import os
import pathlib
import random
import sys
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz import targets as fuzz_targets  # noqa: E402
from fuzz.make_corpus import frame, split_spec  # noqa: E402
from fuzz.run import mutate  # noqa: E402
from fuzz.targets import TARGETS  # noqa: E402

from conftest import load_speedups  # noqa: E402

CORPUS = ROOT / "fuzz" / "corpus"
EXAMPLES = int(os.environ.get("FASTWS_FUZZ_EXAMPLES", "300"))


def corpus_files(target):
    return sorted(p for p in (CORPUS / target).iterdir() if p.is_file())


CORPUS_CASES = [
    pytest.param(target, path, id=f"{target}/{path.name}")
    for target in TARGETS
    for path in corpus_files(target)
]


@pytest.fixture(scope="module", autouse=True)
def compiled_codec():
    """The differential targets need the compiled codec: skip (or fail under
    FASTWS_REQUIRE_EXTENSIONS) like the other codec tests when it is missing."""
    return load_speedups()


def test_every_target_has_seeds():
    assert set(TARGETS) == {"frame_parser", "utf8", "http", "inflate", "protocol"}
    for target in TARGETS:
        assert len(corpus_files(target)) >= 5, target


@pytest.mark.parametrize("target, path", CORPUS_CASES)
def test_corpus(target, path):
    TARGETS[target](path.read_bytes())


@pytest.mark.parametrize("target", list(TARGETS))
def test_mutants(target):
    """Deterministic random mutants of the corpus (what ``python -m fuzz.run
    --engine random`` does, with a fixed seed and a fixed count)."""
    rng = random.Random(f"fastws-fuzz-{target}")
    pool = [p.read_bytes() for p in corpus_files(target)]
    func = TARGETS[target]
    for i in range(EXAMPLES):
        data = mutate(rng, rng.choice(pool), pool, 4096)
        try:
            func(data)
        except Exception as exc:
            raise AssertionError(
                f"{target} fails on mutant {i}: {data!r}\n"
                f"(save it to fuzz/corpus/{target}/regress-<name> and fix)"
            ) from exc
        if i % 10 == 0:
            pool.append(data)


# --- each target can fail --------------------------------------------------------------


def seed(target, contains=b""):
    for path in corpus_files(target):
        data = path.read_bytes()
        if contains in data:
            return data
    raise AssertionError(f"no {target} seed with {contains!r}")


def _patched_module(module, **names):
    fake = types.ModuleType(module.__name__ + "_broken")
    fake.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    fake.__dict__.update(names)
    return fake


def test_frame_parser_target_catches_a_disagreement():
    from fastws import _codec_py

    class DropsEmptyFrames(_codec_py.FrameParser):
        __slots__ = ()

        def feed(self, data):
            return [f for f in super().feed(data) if f.payload]

    broken = _patched_module(_codec_py, FrameParser=DropsEmptyFrames)
    data = seed("frame_parser", b"\x89\x00")  # an empty ping
    fuzz_targets.frame_parser(data)
    with pytest.raises(AssertionError, match="disagree"):
        fuzz_targets.frame_parser(data, cy=load_speedups(), py=broken)


def test_frame_parser_target_catches_a_wrong_close_code():
    from fastws import _codec_py, _rules
    from fastws.exceptions import ProtocolError

    def too_big(length, max_size):
        return ProtocolError(f"frame of {length} bytes exceeds max_size of {max_size} bytes")

    broken_rules = _patched_module(_rules, too_big=too_big)
    # server side, max_size 5 (index 3 in MAX_SIZES), a 7-byte frame
    assert fuzz_targets.MAX_SIZES[3] == 5
    data = bytes([1, 3]) + split_spec() + frame(1, b"too big", masked=True)
    fuzz_targets.frame_parser(data)
    original = _codec_py._rules
    _codec_py._rules = broken_rules
    try:
        with pytest.raises(AssertionError):
            fuzz_targets.frame_parser(data, cy=load_speedups(), py=_codec_py)
    finally:
        _codec_py._rules = original


def test_utf8_target_catches_a_lax_validator():
    from fastws import _codec_py

    def accepts_surrogates(data):
        return _codec_py.validate_utf8(bytes(data).replace(b"\xed\xa0\x80", b"abc"))

    broken = _patched_module(_codec_py, validate_utf8=accepts_surrogates)
    data = seed("utf8", b"\xed\xa0\x80")
    fuzz_targets.utf8(data)
    with pytest.raises(AssertionError):
        fuzz_targets.utf8(data, cy=load_speedups(), py=broken)


def test_http_target_catches_an_undocumented_exception(monkeypatch):
    from fastws import http11

    def fail(self, message, *args):
        raise ValueError(message)

    data = seed("http", b"HTTP/2.0")
    fuzz_targets.http(data)
    monkeypatch.setattr(http11._HeadParser, "_fail", fail)
    with pytest.raises(ValueError):
        fuzz_targets.http(data)


def test_http_target_catches_an_unbounded_buffer(monkeypatch):
    from fastws import http11

    data = seed("http", b"X: vvvv")  # a header line longer than max_line=16
    fuzz_targets.http(data)
    monkeypatch.setattr(http11._HeadParser, "_line_too_long", lambda self: None)
    with pytest.raises((AssertionError, TypeError)):
        fuzz_targets.http(data)


def test_inflate_target_catches_an_unbounded_inflate(monkeypatch):
    from fastws.deflate import PerMessageDeflate

    decode = PerMessageDeflate.decode

    def unbounded(self, payload, *, first, fin, max_size):
        return decode(self, payload, first=first, fin=fin, max_size=None)

    data = seed("inflate", bytes([0x00 | 7 | (5 << 4)]))  # the bomb seed, max_size 1000
    fuzz_targets.inflate(data)
    monkeypatch.setattr(PerMessageDeflate, "decode", unbounded)
    with pytest.raises(AssertionError):
        fuzz_targets.inflate(data)


def test_protocol_target_catches_a_disagreement():
    from fastws import _codec_py

    class LaxValidator(_codec_py.Utf8Validator):
        __slots__ = ()

        def feed(self, data):
            super().feed(data)
            return True

    broken = _patched_module(_codec_py, Utf8Validator=LaxValidator)
    # an open server protocol (mode 2), max_size None, the first frame of a
    # text message with invalid UTF-8: 1007 at once, unless the validator is lax
    bad = bytes([2, 0, 0]) + split_spec() + frame(1, b"\xce\xbb\xff", fin=False, masked=True)
    fuzz_targets.protocol(bad)
    with pytest.raises(AssertionError, match="disagree"):
        fuzz_targets.protocol(bad, cy=load_speedups(), py=broken)


def test_protocol_target_catches_an_exception_from_receive_data(monkeypatch):
    from fastws.exceptions import InvalidUTF8
    from fastws.protocol import Protocol

    def boom(self, exc):
        raise exc

    data = bytes([2, 0, 0]) + split_spec() + frame(1, b"bad \xff", masked=True)
    fuzz_targets.protocol(data)
    monkeypatch.setattr(Protocol, "_fail", boom)
    with pytest.raises(InvalidUTF8):  # the failure itself, not swallowed by the target
        fuzz_targets.protocol(data)
