"""Build the compiled codec, fastws._speedups, and the compiled hot methods of
fastws.asyncio's connections, fastws.asyncio._fastpath, from Cython.

Environment:
- FASTWS_NO_EXTENSIONS=1: build a pure-Python package (no compiler needed);
- FASTWS_ANNOTATE=1: also write Cython's HTML annotation next to the .pyx;
- FASTWS_DEBUG_BUILD=1: -O0 -g, for gdb, valgrind and AddressSanitizer runs.

Never -march=native: wheels must run on every CPU of their platform. The AVX2
kernels in fastws/_simd.h carry per-function target attributes and are picked at
run time.
"""

import os
import platform
import sys

from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _extensions():
    if _flag("FASTWS_NO_EXTENSIONS"):
        return []
    if platform.python_implementation() != "CPython":
        # PyPy and others run the pure-Python twin, which their JIT handles well.
        return []
    from Cython.Build import cythonize

    if sys.platform == "win32":
        cflags = ["/O2"]
    elif _flag("FASTWS_DEBUG_BUILD"):
        cflags = ["-O0", "-g3", "-fno-omit-frame-pointer"]
    else:
        cflags = ["-O3", "-fno-strict-aliasing"]
    ext = Extension(
        "fastws._speedups",
        ["fastws/_speedups.pyx"],
        depends=["fastws/_simd.h"],
        include_dirs=["fastws"],
        extra_compile_args=cflags,
    )
    # The compiled hot methods of fastws.asyncio's Connection (no C of its own).
    fastpath = Extension(
        "fastws.asyncio._fastpath",
        ["fastws/asyncio/_fastpath.pyx"],
        extra_compile_args=cflags,
    )
    return cythonize(
        [ext, fastpath],
        language_level=3,
        annotate=_flag("FASTWS_ANNOTATE"),
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )


setup(ext_modules=_extensions())
