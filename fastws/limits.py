"""The limits every driver takes the same way: ``max_queue`` and
``write_limit`` (a high-water mark, or a ``(high, low)`` pair, as the
``websockets`` library takes them), and the ``logger`` option."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional, Tuple, Union

__all__ = ["QueueLimit", "WriteLimit", "LoggerLike", "queue_limits", "write_limits"]

#: ``max_queue``: a high-water mark, ``(high, low)``, or None for no limit.
QueueLimit = Union[int, Tuple[int, Optional[int]], None]
#: ``write_limit``: a high-water mark, or ``(high, low)``.
WriteLimit = Union[int, Tuple[int, Optional[int]]]
if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[Any]
else:  # LoggerAdapter takes no subscript at run time before Python 3.11
    _Adapter = logging.LoggerAdapter

#: ``logger``: a logger, a logger's name, or None for the default.
LoggerLike = Union[logging.Logger, _Adapter, str, None]


def _split_limit(name: str, value: Any) -> Tuple[int, Optional[int]]:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a (high, low) tuple, got {value!r}")
        high, low = value
    else:
        high, low = value, None
    for what, number in (("high", high), ("low", low)):
        if what == "low" and number is None:
            continue  # the default low-water mark
        if isinstance(number, bool) or not isinstance(number, int):
            raise TypeError(f"{name} {what} must be an int, got {type(number).__name__}")
    return high, low


def queue_limits(max_queue: QueueLimit) -> Tuple[Optional[int], Optional[int]]:
    """Check ``max_queue`` and split it into its high- and low-water marks.

    Args:
        max_queue: The most messages received and not yet read: an int (the
            low-water mark is then a quarter of it), ``(high, low)``, or None
            for no limit.

    Returns:
        ``(high, low)``, both None for no limit.

    Raises:
        ValueError: If high is below 1 or low is not between 0 and high.
        TypeError: If a mark is not an int.
    """
    if max_queue is None:
        return None, None
    high, low = _split_limit("max_queue", max_queue)
    if high < 1:
        raise ValueError(f"max_queue must be >= 1 or None, got {high}")
    if low is None:
        low = high // 4
    elif not 0 <= low <= high:
        raise ValueError(f"max_queue low-water mark must be between 0 and {high}, got {low}")
    return high, low


def write_limits(write_limit: WriteLimit) -> Tuple[int, int]:
    """Check ``write_limit`` and split it into its high- and low-water marks.

    Args:
        write_limit: The transport's buffer size, in bytes, above which
            ``send()`` waits: an int (it then waits until the buffer drains
            below a quarter of it) or ``(high, low)``.

    Returns:
        ``(high, low)``.

    Raises:
        ValueError: If a mark is negative or low is above high.
        TypeError: If a mark is not an int.
    """
    high, low = _split_limit("write_limit", write_limit)
    if high < 0:
        raise ValueError(f"write_limit must be >= 0, got {high}")
    if low is None:
        low = high // 4
    elif not 0 <= low <= high:
        raise ValueError(f"write_limit low-water mark must be between 0 and {high}, got {low}")
    return high, low


def resolve_logger(logger: LoggerLike, default: str) -> Union[logging.Logger, _Adapter]:
    """The logger a connection logs to.

    Args:
        logger: The ``logger`` option: a logger or adapter, a logger's name,
            or None.
        default: The name of the logger to use when ``logger`` is None, for
            example ``"fastws.server"``.

    Returns:
        The logger.
    """
    if logger is None:
        return logging.getLogger(default)
    if isinstance(logger, str):
        return logging.getLogger(logger)
    return logger
