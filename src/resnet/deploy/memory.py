"""Peak resident memory an engine adds to the process, measured in the process (``resnet bench``'s column).

Method: before the engine is built, collect garbage and hand glibc's free heap back to the system
(``malloc_trim(0)``) and read the resident set size (``/proc/self/statm``): the base. After it is built,
do the same again (so one-off build transients, such as our int8 calibration pass or ONNX Runtime's
graph optimisation, are not counted), then a thread samples the resident set size every
:data:`SAMPLE_S` seconds while the engine runs its warm-up calls. The figure is the highest sample less
the base: the weights, prepacked copies, arenas and activations the engine holds while it runs at that
batch, not the shared libraries already loaded (torch, onnxruntime), which every engine in the process
shares.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from types import TracebackType

SAMPLE_S = 0.002
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """The process's resident set size now, or None where ``/proc/self/statm`` does not exist."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _release_free_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def base_rss() -> int | None:
    """The resident set size once garbage is collected and free heap returned: a :class:`PeakRss` base."""
    _release_free_heap()
    return resident_bytes()


class PeakRss:
    """``with PeakRss(base) as mem: ...`` then ``mem.growth_mib``: peak RSS during the block over ``base``
    (by default the size as the block starts), or None where it cannot be read."""

    def __init__(self, base: int | None = None, interval: float = SAMPLE_S) -> None:
        self.interval = interval
        self._given_base = base
        self.base: int | None = None
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while True:
            now = resident_bytes()
            if now is not None and (self.peak is None or now > self.peak):
                self.peak = now
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        now = base_rss()
        self.base = self._given_base if self._given_base is not None else now
        self.peak = now
        if self.base is not None and now is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        now = resident_bytes()
        if now is not None and self.peak is not None:
            self.peak = max(self.peak, now)

    @property
    def growth_mib(self) -> float | None:
        if self.base is None or self.peak is None:
            return None
        return max(0, self.peak - self.base) / 2**20
