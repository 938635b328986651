"""The server's settings and defaults, free of PyTorch and FastAPI so the command line can show them at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import UsageError

DEFAULT_HOST = "127.0.0.1"  # loopback: put a reverse proxy in front to serve others (docs/guide/serving.md)
DEFAULT_PORT = 8000
MiB = 1 << 20
MAX_HEAD_BYTES = 64 * 1024  # request line and headers, at most, whichever HTTP implementation parses them
# uvicorn's `http` and `loop`, default first: `auto` is httptools and uvloop where installed (on quiet cores they served
# 1.23x the requests/s of h11 and asyncio for a CIFAR ResNet-20 at 64 clients, and the same for a ResNet-18:
# docs/results/serve/README.md), else h11 and asyncio
HTTP_IMPLEMENTATIONS = ("auto", "httptools", "h11")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")


@dataclass(frozen=True)
class ServeConfig:
    """Batching, limits and defaults of one server."""

    max_batch: int = 32  # images run together at most
    max_wait_ms: float = 5.0  # how long the first image of a batch waits for company
    max_bytes: int = 20 * MiB  # largest request body
    max_pixels: int = 25_000_000  # largest image to decode (width x height; a large JPEG at its reduced scale), checked from the header
    timeout_s: float = 30.0  # longest a request may take, upload included
    max_queue: int = 1024  # images waiting at most; more get 503
    top: int = 5  # classes returned when the request does not say
    decode_threads: int = 0  # threads decoding uploads (one intra-op thread each); 0: two per core
    large_pixels: int = 4_000_000  # images decoding to more pixels than this queue for one thread of their own
    allow_scorecam: bool = False  # Score-CAM runs one forward pass per channel (2048 on ResNet-50), holding up every batch
    # Connections (enforced by serve/http.py's protocol and the app's admission; docs/guide/serving.md "Limits and bad input"):
    max_connections: int = 512  # open connections at most; then the oldest one still sending its head is closed, else 503
    max_in_flight: int = 128  # requests being handled at once (/healthz and /metrics aside); more get 503 at once
    head_timeout_s: float = 5.0  # longest a request line and headers may take to arrive (slowloris); then 408, closed
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this long (uvicorn's timeout_keep_alive)
    retry_after_s: int = 1  # the Retry-After of every 503
    strict: bool = False  # refuse damaged images (decoded only with recovery) with 422 instead of answering them marked

    def __post_init__(self) -> None:
        checks = {
            "max_batch": self.max_batch >= 1, "max_wait_ms": self.max_wait_ms >= 0, "max_bytes": self.max_bytes >= 1024,
            "max_pixels": self.max_pixels >= 1, "large_pixels": self.large_pixels >= 1, "timeout_s": self.timeout_s > 0, "max_queue": self.max_queue >= 1,
            "top": self.top >= 1, "decode_threads": self.decode_threads >= 0, "max_connections": self.max_connections >= 1,
            "max_in_flight": self.max_in_flight >= 1, "head_timeout_s": self.head_timeout_s > 0,
            "keep_alive_s": self.keep_alive_s > 0, "retry_after_s": self.retry_after_s >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{n}={getattr(self, n)!r}" for n in bad)
            raise UsageError(f"invalid server setting {values}: batch, pixels, queue and top at least 1, "
                             "bytes at least 1024, wait and decode threads at least 0, timeout above 0")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
