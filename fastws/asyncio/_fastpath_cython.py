"""What :mod:`fastws.asyncio._fastpath_py` uses of Cython's ``cython`` module,
for when Cython is not installed, and for type checkers.

The fast path's source imports ``cython``: compiled, ``cython.compiled`` is
True, fixed at compile time, and Cython drops the pure-Python branches; run as
plain Python it is False (Cython's own pure-Python ``cython`` module, when
Cython is installed, or this one). Type checkers are given this module: its
``Literal[False]`` tells them that the C branches never run in Python, so they
check only the Python ones (the names there are Cython's, declared in
``_fastpath.pxd``).
"""

from typing import Literal

compiled: Literal[False] = False
