"""``plain_message(frame)``: the one place where "is this frame a whole plain
message?" is decided, and what that message is.

A whole (FIN), unextended (no reserved bit) text or binary frame carries its
message: ``bytes`` for binary, ``str`` for text that is strict UTF-8. Anything
else is None. Each twin takes its own frames and the other twin's (a protocol
runs with either codec), and both agree on every frame.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastws.frames import Opcode

from conftest import load_codec, load_speedups

CONT, TEXT, BINARY = Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG

# (opcode, payload, flags, message): flags are the Frame arguments besides the
# first two; message is what plain_message gives.
CASES = [
    (TEXT, b"hello", {}, "hello"),
    (TEXT, "κόσμε €𝄞".encode(), {}, "κόσμε €𝄞"),
    (TEXT, b"", {}, ""),
    (TEXT, b"\x00\x7f", {}, "\x00\x7f"),
    (BINARY, b"\x00\xff\x80", {}, b"\x00\xff\x80"),
    (BINARY, b"", {}, b""),
    (BINARY, b"\xff\xfe", {}, b"\xff\xfe"),  # binary is never decoded
    # text that is not strict UTF-8
    (TEXT, b"\xff", {}, None),
    (TEXT, b"ab\xc0\x80", {}, None),  # overlong
    (TEXT, b"\xed\xa0\x80", {}, None),  # surrogate
    (TEXT, b"\xf4\x90\x80\x80", {}, None),  # above U+10FFFF
    (TEXT, b"ok\xe2\x82", {}, None),  # cut short
    # not whole
    (TEXT, b"hello", {"fin": False}, None),
    (BINARY, b"x", {"fin": False}, None),
    (CONT, b"hello", {}, None),
    (CONT, b"hello", {"fin": False}, None),
    # a reserved bit: an extension has to process the frame first
    (TEXT, b"hello", {"rsv1": True}, None),
    (BINARY, b"x", {"rsv1": True}, None),
    (TEXT, b"hello", {"rsv2": True}, None),
    (BINARY, b"x", {"rsv3": True}, None),
    # control frames
    (CLOSE, b"\x03\xe8", {}, None),
    (PING, b"hello", {}, None),
    (PONG, b"x", {}, None),
]
IDS = [f"{op.name}-{payload[:6]!r}-{flags}" for op, payload, flags, _ in CASES]


@pytest.mark.parametrize(("opcode", "payload", "flags", "message"), CASES, ids=IDS)
@pytest.mark.parametrize("frames_of", ["cython", "python"])
def test_plain_message(codec, frames_of, opcode, payload, flags, message):
    frame = load_codec(frames_of).Frame(opcode, payload, **flags)
    result = codec.plain_message(frame)
    assert result == message
    assert type(result) is type(message)
    if type(message) is bytes:
        assert result is frame.payload  # the payload itself, not a copy


@pytest.mark.parametrize(("opcode", "payload", "flags", "message"), CASES, ids=IDS)
def test_plain_message_reads_attributes(codec, opcode, payload, flags, message):
    """Any object with a frame's attributes (its opcode an Opcode member)."""
    frame = types.SimpleNamespace(
        opcode=opcode, payload=payload, fin=True, rsv1=False, rsv2=False, rsv3=False
    )
    vars(frame).update(flags)
    assert codec.plain_message(frame) == message


def test_plain_message_of_parsed_frames(codec):
    """Frames as the parser gives them: a message in one frame, a fragmented
    one, a compressed one and control frames between them."""
    stream = b"".join(
        [
            codec.build_frame(TEXT, "one"),
            codec.build_frame(BINARY, b"two"),
            codec.build_frame(TEXT, "fra", fin=False),
            codec.build_frame(PING, b"ping"),
            codec.build_frame(CONT, "gment"),
            codec.build_frame(BINARY, b"deflated", rsv1=True),
            codec.build_frame(TEXT, b"\xce\xba\xce"),  # cut in the middle of a character
            codec.build_frame(TEXT, b"\xce\xba"),
        ]
    )
    frames = codec.FrameParser(mask_required=False, allow_rsv1=True).feed(stream)
    assert [codec.plain_message(f) for f in frames] == [
        "one", b"two", None, None, None, None, None, "κ",
    ]


def test_plain_message_wants_a_frame(codec):
    with pytest.raises(AttributeError):
        codec.plain_message(b"\x81\x00")


# --- properties ------------------------------------------------------------------------

utf8ish = st.one_of(
    st.text(max_size=40).map(lambda s: s.encode("utf-8")),
    st.binary(max_size=40),
    st.text(
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters(), max_size=10
    ).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


def reference(opcode, payload, fin, rsv1, rsv2, rsv3):
    if not fin or rsv1 or rsv2 or rsv3 or opcode not in (TEXT, BINARY):
        return None
    if opcode is BINARY:
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


@given(
    opcode=st.sampled_from(list(Opcode)),
    payload=utf8ish,
    fin=st.booleans(),
    rsv=st.sampled_from([(False, False, False)] * 5 + [(True, False, False), (False, True, False),
                                                       (False, False, True)]),
)
def test_twins_agree_on_every_frame(both_codecs, opcode, payload, fin, rsv):
    cy, py = both_codecs
    expected = reference(opcode, payload, fin, *rsv)
    for frame_module in both_codecs:
        frame = frame_module.Frame(opcode, payload, fin, *rsv)
        results = [cy.plain_message(frame), py.plain_message(frame)]
        assert results == [expected, expected]
        assert [type(r) for r in results] == [type(expected)] * 2


# --- the C declaration, from another compiled module --------------------------------------

CIMPORTER = '''
# cython: language_level=3
from fastws._speedups cimport Frame, plain_message_c

def decide(Frame frame):
    return plain_message_c(frame)
'''


@pytest.mark.slow
def test_plain_message_c_can_be_cimported(tmp_path):
    """``from fastws._speedups cimport plain_message_c`` compiles in another
    module and decides as plain_message does (slow: runs Cython and the C
    compiler; needs the source tree's _speedups.pxd)."""
    compiled = load_speedups()
    pytest.importorskip("Cython")
    root = Path(compiled.__file__).resolve().parent.parent
    if not (root / "fastws" / "_speedups.pxd").exists():
        pytest.skip("no _speedups.pxd next to the compiled module (an installed wheel)")
    (tmp_path / "cimporter.pyx").write_text(CIMPORTER, encoding="utf-8")
    (tmp_path / "setup.py").write_text(
        "from setuptools import setup\n"
        "from Cython.Build import cythonize\n"
        f"setup(ext_modules=cythonize(['cimporter.pyx'], include_path=[{str(root)!r}]))\n",
        encoding="utf-8",
    )
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        import cimporter
    finally:
        sys.path.remove(str(tmp_path))
    for opcode, payload, flags, message in CASES:
        frame = compiled.Frame(opcode, payload, **flags)
        assert cimporter.decide(frame) == message == compiled.plain_message(frame)
