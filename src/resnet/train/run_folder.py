"""A run folder before and after training: whether to resume, whether a saved run matches, what a full disk left."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping

from ..errors import ResNetError, UsageError
from . import checkpoint as ckpt
from .recipes import Recipe

# Fields that may change between a run and its resumption without changing what is computed.
RESUME_MAY_CHANGE = {"log_every", "workers", "compile", "compile_mode", "extra"}
RUN_FILES = (ckpt.STATE_FILE, ckpt.LAST_WEIGHTS, ckpt.BEST_WEIGHTS, "metrics.jsonl", "summary.json")


class TrainingStorageError(ResNetError):
    """Writing the run folder failed (disk full, ...); the last complete checkpoint is still there."""


def prepare_folder(out: Path, *, resume: bool, overwrite: bool, is_main: bool) -> bool:
    """Returns whether to resume; refuses to overwrite a run unless asked (``overwrite``: its files are deleted)."""
    has_state = (out / ckpt.STATE_FILE).is_file()
    if resume:
        return has_state
    if has_state or (out / "metrics.jsonl").is_file():
        if not overwrite:
            raise UsageError(f"{out} already holds a training run; pass `resume` to continue it, `overwrite` to start "
                             "it again, or choose another `out`")
        if is_main:
            for name in RUN_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (out / name).unlink()
    return False


def check_resumable(out: Path, then: Mapping[str, Any], now: Mapping[str, Any], identity: Iterable[tuple[str, Any, Any]],
                    may_change: Collection[str] = RESUME_MAY_CHANGE) -> None:
    """Refuse to resume the run in ``out`` with settings that would compute something else: recipe fields
    ``then`` vs ``now`` (but ``may_change``), and ``identity`` triples ``(what, then, now)`` (model, data, seed...)."""
    differs = [f"{k}: {then.get(k)!r} then, {now[k]!r} now" for k in now if k not in may_change and then.get(k) != now[k]]
    differs += [f"{key}: {before!r} then, {current!r} now" for key, before, current in identity if before != current]
    if differs:
        raise UsageError(
            f"{out} holds a run made with other settings ({'; '.join(differs)}); resume with the same settings, "
            "or train into another `out`"
        )


def saved_recipe(state: dict[str, Any]) -> dict[str, Any]:
    """The recipe a checkpoint was made with; a field added to :class:`Recipe` since holds its default there."""
    defaults = {f.name: f.default for f in dataclasses.fields(Recipe) if f.default is not dataclasses.MISSING}
    return defaults | dict(state.get("recipe") or {})


def storage_error(err: OSError, out: Path) -> TrainingStorageError:
    """What a failed write (disk full, quota, read-only or vanished folder) means, and which checkpoint survived."""
    what = err.strerror or str(err) or type(err).__name__
    if err.errno == errno.ENOSPC:
        what = "no space left on device (the disk is full)"
    where = f" ({err.filename})" if err.filename else ""
    saved = "no checkpoint had been written yet"
    with contextlib.suppress(Exception):
        state = ckpt.load_state(out)
        if state is not None:
            saved = f"the last checkpoint, {out / ckpt.STATE_FILE} at iteration {state['step']}, is intact"
    return TrainingStorageError(f"training stopped: {what}{where}; {saved}. Free some space (or fix the folder) and "
                                "continue with the same command plus `resume`")
