"""Why a run stops early: Ctrl-C / SIGTERM (:class:`StopFlag`), an interruption or a diverged loss (errors)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from ..errors import ResNetError


class TrainingDiverged(ResNetError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(ResNetError):
    exit_code = 130


class StopFlag:
    """First Ctrl-C / SIGTERM asks the loop to checkpoint and stop; a second one stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
