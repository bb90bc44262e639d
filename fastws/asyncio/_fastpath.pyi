# Stub for the compiled hot methods of a connection. fastws.asyncio._fastpath_py
# has the same names and behaviour.
from typing import Any, Literal, Optional, Union

IMPLEMENTATION: Literal["cython"]

class FastPath:
    protocol: Any
    transport: Any
    listener: Any
    max_queue: Optional[int]
    def get_buffer(self, sizehint: int) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def send_nowait(self, message: Union[str, bytes, bytearray, memoryview]) -> None: ...
