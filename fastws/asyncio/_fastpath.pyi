# fastws.asyncio._fastpath is fastws/asyncio/_fastpath_py.py compiled by Cython
# (with the C declarations of _fastpath.pxd): the same names, the same types.
from typing import Literal

from ._fastpath_py import FastPath as FastPath

__all__ = ["FastPath", "IMPLEMENTATION"]

IMPLEMENTATION: Literal["cython"]
