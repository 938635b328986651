"""Prometheus metrics of one server, in a registry of its own (no process-wide state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _batch_buckets(max_batch: int) -> tuple[float, ...]:
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(float(b))
        b *= 2
    return (*sizes, float(max_batch))


@dataclass
class Metrics:
    max_batch: int
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("resnet_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.errors = Counter("resnet_errors", "Requests refused or failed, by error code", ["code"], registry=r)
        self.latency = Histogram("resnet_request_latency_seconds", "Time from request to answer", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("resnet_batch_size", "Images per network batch", buckets=_batch_buckets(self.max_batch), registry=r)
        self.batch_seconds = Histogram("resnet_batch_seconds", "Network time per batch (CAMs included)", buckets=LATENCY_BUCKETS, registry=r)
        self.images = Counter("resnet_images", "Images classified", registry=r)
        self.in_flight = Gauge("resnet_requests_in_flight", "Predict requests being uploaded, decoded or run", registry=r)
        self.queue = Gauge("resnet_queue_images", "Images waiting for a batch", registry=r)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.images.inc(size)

    def text(self) -> bytes:
        return generate_latest(self.registry)
