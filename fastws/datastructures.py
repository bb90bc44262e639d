"""The names of ``websockets.datastructures``, for code that imports them from
there: :class:`~fastws.headers.Headers` and
:class:`~fastws.exceptions.MultipleValuesError` (fastws defines them in
:mod:`fastws.headers` and :mod:`fastws.exceptions`)."""

from __future__ import annotations

from .exceptions import MultipleValuesError
from .headers import Headers, HeadersLike

__all__ = ["Headers", "HeadersLike", "MultipleValuesError"]
