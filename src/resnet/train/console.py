"""What the trainer prints: lines (:class:`Say`), a progress bar on a terminal (:class:`Progress`) and evaluation lines."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """A rich progress bar on a terminal; nothing extra in logs (evaluation lines are printed anyway)."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.live = None
        self._task = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self.live = RichProgress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                     TextColumn("{task.fields[info]}"), transient=False)
            self._task = self.live.add_task("train", total=total, completed=start, info="")

    def __enter__(self) -> "Progress":
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.stop()

    def advance(self) -> None:
        if self.live is not None:
            self.live.advance(self._task)

    def info(self, text: str) -> None:
        if self.live is not None:
            self.live.update(self._task, info=text)


class Say:
    """Prints one line when enabled (above the progress bar while there is one)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, message: str, progress: Progress | None = None) -> None:
        if not self.enabled:
            return
        if progress is not None and progress.live is not None:
            progress.live.console.print(message)
        else:
            print(message, flush=True)


def eval_line(record: dict[str, Any], total: int) -> str:
    """``iteration 100/600: train err 38.70%, holdout err ... (loss ...), test err ...`` of one evaluation record."""
    parts = [f"iteration {record['step']}/{total}: train err {record['train_error']:.2f}%"]
    for key in ("holdout", "test"):
        if record.get(f"{key}_error") is not None:
            parts.append(f"{key} err {record[f'{key}_error']:.2f}% (loss {record[f'{key}_loss']:.3f})")
    return ", ".join(parts)
