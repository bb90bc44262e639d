"""Build the compiled codec, fastws._speedups, and the compiled hot methods of
fastws.asyncio's connections, fastws.asyncio._fastpath, with Cython.

fastws.asyncio._fastpath has no source of its own: it is the pure-Python twin,
fastws/asyncio/_fastpath_py.py, compiled under the other module name, with the
C declarations of fastws/asyncio/_fastpath.pxd (the .pxd of that module name).

Environment:
- FASTWS_NO_EXTENSIONS=1: build a pure-Python package (no compiler needed);
- FASTWS_ANNOTATE=1: also write Cython's HTML annotation next to each source;
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


def _forget_stale_c(c_file, declarations):
    """Remove ``c_file`` if a .pxd it was generated with is newer. cythonize()
    looks for a source's .pxd by the source's file name: it would not see that
    _fastpath.pxd, or the _speedups.pxd it cimports, changed, and would compile
    the old C again."""
    if not os.path.exists(c_file):
        return
    generated = os.path.getmtime(c_file)
    if any(os.path.getmtime(pxd) > generated for pxd in declarations):
        os.remove(c_file)


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
    fastpath = Extension(
        "fastws.asyncio._fastpath",
        ["fastws/asyncio/_fastpath_py.py"],
        extra_compile_args=cflags,
    )
    _forget_stale_c(
        "fastws/asyncio/_fastpath_py.c",
        ["fastws/asyncio/_fastpath.pxd", "fastws/_speedups.pxd"],
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
