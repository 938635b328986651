"""uvicorn's httptools protocol (llhttp, in C) with the bounds of :mod:`.http`: ``resnet serve --http httptools``.
Imported only when asked for, as it needs the httptools package."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .http import _Bounds


class BoundedHttpTools(_Bounds, HttpToolsProtocol):
    """The phase follows httptools' callbacks; the head is also bounded while it arrives in pieces
    (httptools alone would buffer headers without end)."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(self._start_bounds(transport))
        self._admit()
        self._head = b""  # the head so far, while in the head phase (at most MAX_HEAD_BYTES + one read)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_bounds()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarded(data):
            return
        if self.phase == "head" or self.phase is None:
            self._head += data
            if self._head_too_long(self._head):
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._enter("head")
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head = b""
        self._enter("body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._enter(None)
        super().on_message_complete()
