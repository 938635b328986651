"""uvicorn's HTTP protocols (h11, and httptools: ``resnet serve --http httptools``) with what uvicorn lacks:

- a bound on open connections (:attr:`ServeConfig.max_connections`): past it, the oldest connection still
  sending its request head is closed (408), else the new one gets 503 with ``Retry-After`` and is closed at once;
- a deadline for the request head (:attr:`ServeConfig.head_timeout_s`, slowloris): 408 and closed;
- a deadline for the body (:attr:`ServeConfig.timeout_s` plus a second; the app answers 408 itself at
  ``timeout_s`` while it reads one): a body still trickling in, e.g. one the app never read, is cut;
- a refused body is not read: the answer is sent, the write side shut, at most :data:`LINGER_BYTES` discarded
  for :data:`LINGER_S`, then the connection closed;
- request heads bounded to :data:`MAX_HEAD_BYTES` even when one read brings the whole head (h11 checks its
  buffer only while the head is incomplete, so a 100 KiB head in one read passed): 431 and closed.

Everything else is uvicorn's own settings (``timeout_keep_alive``, ``h11_max_incomplete_event_size``); the
private names relied on (``connections``, ``conn``, ``transport``, ``loop``, ``send_400_response``,
``on_headers_complete``, ``on_message_complete``) are checked against the pinned uvicorn in ``tests/test_serve_limits.py``.

h11 stays the default: httptools with uvloop served fewer images/s under load (docs/results/serve/README.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import MAX_HEAD_BYTES, ServeConfig

log = logging.getLogger("resnet.serve")
BODY_GRACE_S = 1.0  # the protocol cuts a body this long after the app's own 408 would have come
LINGER_S = 2.0  # after answering a request whose body is still coming (413, 503), wait this long before closing,
LINGER_BYTES = 1 << 20  # discarding at most this much of it: closing at once would reset the connection, and the
# client would never see the answer (curl, httpx: "connection reset"); clients sending `Expect: 100-continue` send nothing


def _raw_reply(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n").encode() + body


class _Bounds:
    """The limits shared by both protocols. ``phase`` is ``"head"`` while a request line and headers are
    awaited, ``"body"`` while a body is, else ``None``; one timer per connection watches it."""

    limits: ServeConfig  # set by :func:`bounded_protocol`
    heads: dict[Any, None]  # this server's connections in the head phase, oldest first

    def _start_bounds(self, transport: Any) -> Any:
        """At connection_made, before uvicorn's: the transport uvicorn is to use (closing it lingers)."""
        self.phase: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._socket, self.lingering = transport, None  # bytes discarded since the answer, while lingering
        return _Lingering(transport, self)

    def _admit(self) -> None:
        """After uvicorn's connection_made: over the limit, make room or refuse."""
        if len(self.connections) > self.limits.max_connections and not self._evict_oldest_head():  # type: ignore[attr-defined]
            retry = self.limits.retry_after_s
            self._close_with(_raw_reply(503, "Service Unavailable", "too_many_connections",
                                        f"the server holds its limit of {self.limits.max_connections} connections; retry in {retry} s",
                                        f"retry-after: {retry}\r\n"), "too many connections: refused with 503")
            return
        self._enter("head")

    def _evict_oldest_head(self) -> bool:
        for other in self.heads:
            other._timed_out()  # it leaves `heads` as it closes
            return True
        return False

    def _enter(self, phase: str | None) -> None:
        if phase == self.phase:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.heads.pop(self, None)
        self.phase = phase
        if phase == "head":
            self.heads[self] = None
            self._timer = self.loop.call_later(self.limits.head_timeout_s, self._timed_out)  # type: ignore[attr-defined]
        elif phase == "body":
            self._timer = self.loop.call_later(self.limits.timeout_s + BODY_GRACE_S, self._timed_out)  # type: ignore[attr-defined]

    def _timed_out(self) -> None:
        phase = self.phase
        self._enter(None)
        if self.transport.is_closing():  # type: ignore[attr-defined]
            return
        if phase == "head":
            self._close_with(_raw_reply(408, "Request Timeout", "head_timeout",
                                        f"the request line and headers did not arrive within {self.limits.head_timeout_s:g} s"),
                             "closed connections whose request head was too slow or crowded out (408)")
        elif phase == "body":
            self._close_with(b"", "closed connections whose request body was still arriving after the request's time")

    def _close_with(self, reply: bytes, why: str) -> None:
        log.warning(why)  # rate-limited: serve/lograte.py
        if reply:
            self._socket.write(reply)
        self._socket.close()

    def _linger(self) -> bool:
        """Closing while a body is still coming: True if the close is deferred (see :data:`LINGER_S`)."""
        if self.phase != "body" or self.lingering is not None or not self._socket.can_write_eof():
            return False
        self._enter(None)
        self.lingering = 0
        self._socket.write_eof()
        self.loop.call_later(LINGER_S, self._socket.close)  # type: ignore[attr-defined]
        return True

    def _discarded(self, data: bytes) -> bool:
        """True if ``data`` came while lingering (and was dropped)."""
        if self.lingering is None:
            return False
        self.lingering += len(data)
        if self.lingering > LINGER_BYTES:
            self._socket.close()
        return True

    def _head_too_long(self, buffered: bytes) -> bool:
        end = buffered.find(b"\r\n\r\n")
        if (end if end >= 0 else len(buffered)) <= MAX_HEAD_BYTES:
            return False
        self._enter(None)
        self._close_with(_raw_reply(431, "Request Header Fields Too Large", "head_too_large",
                                    f"the request line and headers are over {MAX_HEAD_BYTES // 1024} KiB"),
                         "refused request heads over the limit (431)")
        return True

    def _end_bounds(self) -> None:
        self._enter(None)


class _Lingering:
    """The transport as uvicorn sees it: closing it waits while the client may still be sending a body."""

    def __init__(self, transport: Any, protocol: _Bounds) -> None:
        self._transport, self._protocol = transport, protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._protocol.lingering is not None or self._transport.is_closing()

    def close(self) -> None:
        if not self._protocol._linger():
            self._transport.close()


class BoundedH11(_Bounds, H11Protocol):
    """uvicorn's h11 protocol with the bounds of :class:`_Bounds`; the phase is h11's state of the client."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(self._start_bounds(transport))
        self._admit()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_bounds()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._discarded(data):
            return
        if self.conn.their_state is h11.IDLE and self._head_too_long(self.conn.trailing_data[0] + data):
            return
        super().data_received(data)
        if not self.transport.is_closing():
            state = self.conn.their_state
            pending = state is h11.IDLE and bool(self.conn.trailing_data[0])
            self._enter("body" if state is h11.SEND_BODY else "head" if pending else None)
