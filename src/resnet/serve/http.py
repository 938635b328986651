"""The HTTP protocol uvicorn speaks for the server: httptools (llhttp, in C) with the same bound on the
request head as h11 gets, or h11 (pure Python) where httptools is not installed or is not wanted.

On 2 loaded cores, h11 and the asyncio loop cost the served throughput and the 1-client latency a
measurable share (``benchmarks/serve_load.py --server``); httptools and uvloop are pinned in the
requirements; :func:`resnet.serve.server.uvicorn_config` falls back to h11 / asyncio without them.
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
