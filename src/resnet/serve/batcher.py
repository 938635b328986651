"""Dynamic micro-batching: requests queue single images; one worker thread gathers them until
``max_batch`` images are waiting, the first has waited ``max_wait_ms``, or no other request is on its
way (still uploading or decoding: a lone client never waits), runs them as one batch on
the (optimised) network, and hands each request its own row. The CAMs some requests ask for are
computed by the same thread on the float network afterwards, so nothing runs the models concurrently.

A request that finds the batcher idle (no other request in flight, nothing queued or running) is queued
undecoded: the worker decodes it itself, then runs it, so a lone client's image crosses one thread
less (the decoding pool is for uploads that arrive while the network is busy).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..evaluate.preprocess import network_input
from ..inference.network import Network
from ..utils.threads import single_threaded
from .limits import BadRequest, ServeConfig


@dataclass
class Job:
    view: Tensor | None  # uint8 [C, h, w], cropped as the network expects; None until `decode` has run
    top: int
    cam: str | None = None  # explain method, or None
    decode: Callable[[], tuple[Tensor, str | None]] | None = None  # makes (view, damaged): on the batching thread when idle, else on a decoding thread
    damaged: str | None = None  # what the decoder said, if the image decoded only with recovery
    future: Future = field(default_factory=Future)


@dataclass
class Outcome:
    top: list[tuple[str, int, float]]  # (class name, index, probability), most likely first
    heatmap: np.ndarray | None  # float32 [h, w] in [0, 1] when a CAM was asked for
    batch_size: int  # images run together with this one
    view: Tensor  # the network's view of the image (the CAM picture is drawn over it)


class MicroBatcher:
    """Owns the worker thread; :meth:`submit` is safe from any thread."""

    def __init__(self, member: Network, config: ServeConfig, on_batch: Callable[[int, float], None] | None = None) -> None:
        self.member, self.config = member, config
        self.on_batch = on_batch  # called with (batch size, seconds) after each batch
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="resnet-serve-batcher", daemon=True)
        self._names = member.class_names()
        self._in_flight = 0  # requests between begin() and end(): the images that may still join a batch
        self._busy = False  # the worker holds jobs (from taking the first to answering the batch)
        self._lock = threading.Lock()
        self._net = member.scorer()

    def start(self) -> None:
        self._thread.start()

    def warm_up(self) -> None:
        """One batch through the network and grad-cam imported, so the first requests wait for neither."""
        import pytorch_grad_cam  # noqa: F401 - seconds of imports (OpenCV) on the first CAM otherwise

        pre = self.member.preprocess
        self._probabilities(torch.zeros(1, pre.channels, pre.crop_size, pre.crop_size, dtype=torch.uint8))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        """Nothing queued or running and no request in flight but the caller's (after its :meth:`begin`):
        its job may be submitted undecoded, to be decoded by the worker itself."""
        return self._in_flight <= 1 and not self._busy and self._queue.empty()

    def begin(self) -> None:
        """A request has started (its image may join a batch soon)."""
        with self._lock:
            self._in_flight += 1

    def end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def submit(self, job: Job) -> Future:
        if self._queue.qsize() >= self.config.max_queue:
            raise BadRequest(503, "overloaded", f"{self.config.max_queue} images are already waiting; retry in a moment")
        self._queue.put(job)
        return job.future

    def decode_and_submit(self, job: Job) -> None:
        """Decodes ``job`` here (a decoding thread) and queues it; a bad upload or a full queue fails
        its future. The caller awaits that one future: a single wake-up of its event loop per request."""
        try:
            if not job.future.cancelled():
                assert job.decode is not None
                job.view, job.damaged = job.decode()
                self.submit(job)
        except Exception as err:  # noqa: BLE001 - the request's own error, answered by its handler
            _fail(job, err)

    def _gather(self, first: Job) -> tuple[list[Job], bool]:
        jobs, deadline = [first], time.perf_counter() + self.config.max_wait_ms / 1000.0
        while len(jobs) < self.config.max_batch:
            if self._in_flight <= len(jobs) and self._queue.empty():
                break  # every request in flight is in this batch: nobody to wait for
            remaining = deadline - time.perf_counter()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            self._busy = True
            if _decoded(first):
                jobs, stop = self._gather(first)
                jobs = [j for j in jobs if _decoded(j) and _claimed(j)]  # drop requests that gave up
                if jobs:
                    self._run(jobs)
                if stop:
                    return
            self._busy = False

    def _run(self, jobs: list[Job]) -> None:
        start = time.perf_counter()
        try:
            probs = self._probabilities(torch.stack([j.view for j in jobs]))
            maps = self._cams(jobs, probs)
        except Exception as err:  # noqa: BLE001 - a failed batch fails its requests, never the worker
            for j in jobs:
                j.future.set_exception(err)
            return
        if self.on_batch:
            self.on_batch(len(jobs), time.perf_counter() - start)
        # One topk and one tolist for the batch, not one per row: per-row calls cost as much as 0.3 ms an image
        # on ResNet-20 (18 % over the network itself, measured by CPU time on a loaded 2-core machine).
        values, indices = (t.tolist() for t in probs.topk(min(max(j.top for j in jobs), len(self._names)), dim=1))
        for i, j in enumerate(jobs):
            k = min(j.top, len(self._names))
            top = [(self._names[c], c, p) for c, p in zip(indices[i][:k], values[i][:k])]
            j.future.set_result(Outcome(top, maps.get(i), len(jobs), j.view))

    @torch.inference_mode()
    def _probabilities(self, views: Tensor) -> Tensor:
        return torch.softmax(self._net.logits(network_input(views, self.member.preprocess)).float(), dim=1)

    def _cams(self, jobs: list[Job], probs: Tensor) -> dict[int, np.ndarray]:
        from ..explain.cam import cam_maps

        out: dict[int, np.ndarray] = {}
        for method in sorted({j.cam for j in jobs if j.cam}):
            rows = [i for i, j in enumerate(jobs) if j.cam == method]
            views = torch.stack([jobs[i].view for i in rows])
            top1 = probs[rows].argmax(dim=1).tolist()
            maps = cam_maps(self.member.model, network_input(views, self.member.preprocess), method, top1)
            out.update(zip(rows, maps))
        return out


def _claimed(job: Job) -> bool:
    """Marks the job's future running; False if its request gave up (timed out) meanwhile."""
    return job.future.running() or job.future.set_running_or_notify_cancel()


def _decoded(job: Job) -> bool:
    """Makes the view of a job queued undecoded; False if its request gave up or the upload is bad (the
    request then gets that error: it fails alone, never the batch)."""
    if job.view is None and job.decode is not None and _claimed(job):
        try:
            with single_threaded():  # as on the decoding threads: a small resize gains nothing from a second core
                job.view, job.damaged = job.decode()
        except Exception as err:  # noqa: BLE001 - a bad upload fails its own request only
            _fail(job, err)
    return job.view is not None


def _fail(job: Job, err: Exception) -> None:
    try:
        job.future.set_exception(err)
    except InvalidStateError:  # the request gave up (timed out) meanwhile
        pass
