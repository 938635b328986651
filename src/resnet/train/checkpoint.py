"""Run-folder checkpoints.

``last.state.pt`` holds everything a resume needs (weights, EMA, optimizer, schedule, RNG, step) in one
file written atomically, so a kill at any moment leaves either the previous state or the new one,
never a mix of two steps. It loads with ``torch.load(weights_only=True)``: no code runs on loading.
``last.safetensors`` / ``best.safetensors`` are the weights people use (``resnet eval RUN``).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..utils.atomic import atomic_write_bytes
from ..utils.file_warnings import naming_file

STATE_FILE = "last.state.pt"
LAST_WEIGHTS = "last.safetensors"
BEST_WEIGHTS = "best.safetensors"
STATE_FORMAT = "resnet-train-state"
STATE_VERSION = 1


def save_state(folder: Path, state: dict[str, Any]) -> Path:
    buffer = io.BytesIO()
    torch.save({"format": STATE_FORMAT, "version": STATE_VERSION, **state}, buffer)
    path = folder / STATE_FILE
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_state(folder: Path) -> dict[str, Any] | None:
    """The saved training state, ``None`` when the folder has none; a damaged file is a clear error."""
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes); delete it to start over, or restore it from a backup")
    from ..models.interop import check_zip_sizes

    check_zip_sizes(path)  # a decompression bomb is refused before anything is inflated
    try:
        with naming_file(path):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        from ..models.interop import unpickling_reason

        reason, unsafe = unpickling_reason(err)
        if not unsafe:
            raise CheckpointError(f"{path} is damaged or truncated ({reason}); delete it to start over") from None
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain data, refused without running it ({reason}); "
            "this is not a state file written by resnet train"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, MemoryError, OverflowError, RecursionError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is damaged or truncated ({str(err).splitlines()[0][:200]}); "
                              "delete it to start over") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a resnet training state; point `out` at a run folder of resnet train")
    if state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path} has state version {state.get('version')}, this build reads {STATE_VERSION}")
    return state


def remove_stale_temporaries(folder: Path) -> int:
    """Delete half-written files a killed run left behind (``.name.xxxx.tmp`` of :mod:`resnet.utils.atomic`)."""
    count = 0
    for tmp in folder.glob(".*.tmp"):
        try:
            tmp.unlink()
            count += 1
        except OSError:
            pass
    return count
