"""Chooses the codec implementation, once, at import time.

The compiled core (:mod:`fastws._speedups`) is used when it is importable, and the
pure-Python twin (:mod:`fastws._codec_py`) otherwise. Environment variables:

- ``FASTWS_NO_EXTENSIONS=1`` forces the pure-Python twin;
- ``FASTWS_REQUIRE_EXTENSIONS=1`` makes a missing or broken extension an
  ImportError instead of a silent fallback (CI sets it).

:data:`IMPLEMENTATION` says which one is active: ``"cython"`` or ``"python"``.
"""

from __future__ import annotations

import importlib
import os


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _missing_extension(module: str, error: ImportError) -> ImportError:
    """The error for a compiled module that FASTWS_REQUIRE_EXTENSIONS requires
    and that cannot be imported: which one, why, and what to do."""
    if isinstance(error, ModuleNotFoundError) and error.name == module:
        why = "is not built"
    else:
        why = f"cannot be imported ({error})"
    return ImportError(
        f"fastws: FASTWS_REQUIRE_EXTENSIONS is set but the compiled module {module} {why}:"
        " install a fastws wheel, or build the extensions (a C compiler and Cython, then"
        " `pip install .` or `python setup.py build_ext --inplace` in a source checkout);"
        " unset FASTWS_REQUIRE_EXTENSIONS to run on the pure-Python twin",
        name=module,
    )


if _flag("FASTWS_NO_EXTENSIONS"):
    if _flag("FASTWS_REQUIRE_EXTENSIONS"):
        raise ImportError(
            "FASTWS_NO_EXTENSIONS and FASTWS_REQUIRE_EXTENSIONS are both set"
        )
    from . import _codec_py as _impl

    IMPLEMENTATION = "python"
else:
    try:
        # (importlib, not ``from . import``: a missing module then reads as
        # missing, not as a circular import of the half-initialized package)
        _impl = importlib.import_module("fastws._speedups")
    except ImportError as exc:
        if _flag("FASTWS_REQUIRE_EXTENSIONS"):
            raise _missing_extension("fastws._speedups", exc) from exc
        from . import _codec_py as _impl

        IMPLEMENTATION = "python"
    else:
        IMPLEMENTATION = "cython"

apply_mask = _impl.apply_mask
apply_mask_inplace = _impl.apply_mask_inplace
validate_utf8 = _impl.validate_utf8
Utf8Validator = _impl.Utf8Validator
Frame = _impl.Frame
FrameParser = _impl.FrameParser
build_frame = _impl.build_frame
build_header = _impl.build_header
plain_message = _impl.plain_message
parse_close = _impl.parse_close
build_close = _impl.build_close
scan_utf8 = _impl.scan_utf8

__all__ = [
    "IMPLEMENTATION",
    "Frame",
    "FrameParser",
    "Utf8Validator",
    "apply_mask",
    "apply_mask_inplace",
    "build_close",
    "build_frame",
    "build_header",
    "parse_close",
    "plain_message",
    "scan_utf8",
    "validate_utf8",
]
