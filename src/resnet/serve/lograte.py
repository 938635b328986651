"""Repeated log lines from one cause, once per interval with a count: a connection flood must not write a
traceback per connection (146 MB of log in 40 s, before this filter)."""

from __future__ import annotations

import logging
import threading
import time

INTERVAL_S = 10.0  # one line per cause per this many seconds at most
LOGGERS = ("uvicorn.error", "asyncio", "resnet.serve")  # where per-connection errors are written


class RateLimit(logging.Filter):
    """Lets the first record of each cause (logger, level, message template) through, drops the repeats
    for ``interval`` seconds, then lets the next one through with ``(N more like it in the last S s)``.
    A repeat keeps no traceback: the first one said it."""

    def __init__(self, interval: float = INTERVAL_S, clock=time.monotonic) -> None:
        super().__init__()
        self.interval, self.clock = interval, clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # cause -> (when last let through, dropped since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            last, dropped = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.interval:
                self._seen[key] = (last, dropped + 1)
                return False
            if len(self._seen) > 1024:  # many causes: forget them rather than grow
                self._seen.clear()
            self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} more like it in the last {now - last:.0f} s)"
            record.args = None
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def install(interval: float = INTERVAL_S) -> RateLimit:
    """One :class:`RateLimit` on each of :data:`LOGGERS` (replacing an earlier one); returns it."""
    limit = RateLimit(interval)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RateLimit)]:
            logger.removeFilter(old)
        logger.addFilter(limit)
    return limit
