"""uvicorn's httptools protocol (llhttp, in C) with the same bound on the request head as h11 gets:
``resnet serve --http httptools``.

Measured with ``benchmarks/serve_load.py --server`` on 2 loaded cores, httptools with uvloop used more server
CPU per request and served fewer images/s at 64 clients than h11 with asyncio (0.55 against 0.73 of direct
throughput), so h11 stays the default; both packages are pinned in the requirements for those who want them.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # needs httptools: imported only when it is there

from .config import MAX_HEAD_BYTES


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering 400 and closing when a request's head passes
    :data:`MAX_HEAD_BYTES` (httptools alone would buffer headers without end)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_head = True  # the next bytes belong to a request line or headers
        self.head_bytes = 0  # bytes of the head so far
        self.ended = False  # a request ended in the bytes being parsed

    def data_received(self, data: bytes) -> None:
        self.ended = False
        super().data_received(data)  # the callbacks below say where heads end and requests end
        if self.in_head and not self.ended and not self.transport.is_closing():
            self.head_bytes += len(data)  # a chunk holding the end of a request counts for nothing: limit + one read at most
            if self.head_bytes > MAX_HEAD_BYTES:
                self.send_400_response(f"Request line and headers over {MAX_HEAD_BYTES} bytes.")

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_head, self.ended = True, True
        super().on_message_complete()
