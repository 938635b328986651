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
        self.head_bytes: int | None = 0  # bytes received since the last request's body began; None inside a body

    def data_received(self, data: bytes) -> None:
        if self.head_bytes is not None:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self.send_400_response(f"Request line and headers over {MAX_HEAD_BYTES} bytes.")
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.head_bytes = 0
        super().on_message_complete()
