"""Metrics of a run: JSON lines (the record other tools read back) and TensorBoard."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_text

METRICS_FILE = "metrics.jsonl"
#: A record's wall-clock figures: they differ between two runs of the same training, resumed or not.
TIMING_FIELDS = frozenset({"elapsed", "images_per_s", "eval_seconds"})


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete records; a line cut short by a kill is ignored."""
    records = []
    if not path.is_file():
        return records
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class MetricsLog:
    """Appends records to ``metrics.jsonl`` and mirrors scalars to TensorBoard (rank 0 only)."""

    def __init__(self, folder: Path, *, resume_step: int | None, tensorboard: bool = True) -> None:
        self.path = folder / METRICS_FILE
        if resume_step is None:
            self.path.write_text("")
        else:
            # Records after the checkpoint were made by the part of the run that is about to be redone.
            # Rewritten atomically: a kill during the rewrite must not lose the records before the checkpoint.
            kept = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(folder / "tensorboard"), purge_step=resume_step)
            except ImportError:
                self._tb = None

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()
        if self._tb is not None:
            kind, step = record.get("kind", "train"), int(record.get("step", 0))
            for key, value in record.items():
                if key not in ("kind", "step") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        if self._tb is not None:
            self._tb.close()
