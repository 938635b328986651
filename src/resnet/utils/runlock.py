"""One writer per run folder, and a run folder whose files are the ones its summary describes.

:func:`run_lock` takes an exclusive OS lock (``fcntl.flock``) on ``train.lock`` in the folder, a file that
names its holder (pid, host, start time). A second writer fails at once with :class:`RunFolderBusy`, naming the
holder. The lock dies with its process (the kernel drops it on exit, crash or SIGKILL); a lock file left by a
process that no longer runs is taken over with a line saying so. A clean exit removes the file.

:func:`weights_digests` gives the sha256 of ``best`` / ``last`` for ``summary.json``; :func:`check_run_folder`
refuses a folder whose weights disagree with its summary (step or digest): a folder written by two runs,
or changed after its run ended. Both live here, below every layer, so the trainers (which write the summary)
and the loaders (which read run folders) share one owner.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import CheckpointError, UsageError

LOCK_FILE = "train.lock"
SUMMARY_FILE = "summary.json"
DIGESTED = ("best.safetensors", "last.safetensors")


class RunFolderBusy(UsageError):
    """Another process is writing the run folder."""


def _holder_text(info: dict[str, Any]) -> str:
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} (started {info.get('started', '?')})"


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def pid_alive(pid: object) -> bool:
    """Whether process ``pid`` runs on this machine."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def live_writer(folder: Path) -> dict[str, Any] | None:
    """The holder named by ``folder``'s lock file when it may still be writing (alive here, or on another host)."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return None
    info = _read_holder(path)
    if info.get("host") == socket.gethostname() and not pid_alive(info.get("pid")):
        return None
    return info


def _open_locked(path: Path) -> int:
    """An fd of ``path`` holding its exclusive lock, the file still being the one at ``path`` (a holder that
    removes it on exit may do so between our open and our lock: then try again)."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunFolderBusy(f"{path.parent} is being written by another training run, "
                                    f"{_holder_text(_read_holder(path))} (lock file {path}); wait for it to end, "
                                    "or train into another `out`") from None
            raise CheckpointError(f"cannot lock {path}: {err.strerror or err}; the file system may not support "
                                  "locks, train into a folder on a local disk") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike[str], say: Callable[[str], Any] | None = None) -> Iterator[Path]:
    """Hold ``folder``'s writer lock for the ``with`` block (the folder must exist). ``say`` gets the one line
    about a stale lock taken over (default: standard error)."""
    say = say or _warn
    path = Path(folder) / LOCK_FILE
    fd = _open_locked(path)
    try:
        previous = _read_holder(path)
        if previous:
            alive = previous.get("host") == socket.gethostname() and pid_alive(previous.get("pid"))
            why = "which no longer holds it" if alive else "which is no longer running"
            say(f"took over the stale lock {path} of {_holder_text(previous)}, {why}")
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        yield path
    finally:
        with contextlib.suppress(OSError):  # removed while locked: the next writer never sees a stale holder
            path.unlink()
        os.close(fd)  # releases the lock


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- the summary and the files it describes --------------------------------------------------------------
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_digests(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{"best.safetensors": sha256, "last.safetensors": sha256}`` of the files present: ``summary.json``'s
    ``"files"`` record, which :func:`check_run_folder` holds the folder to."""
    return {name: file_sha256(Path(folder) / name) for name in DIGESTED if (Path(folder) / name).is_file()}


def _summary_step(summary: dict[str, Any], name: str) -> object:
    if name == "best.safetensors":
        return (summary.get("best") or {}).get("step") if isinstance(summary.get("best"), dict) else None
    return summary.get("steps") if name == "last.safetensors" else None


def check_run_folder(folder: str | os.PathLike[str], weights: str | os.PathLike[str], step: object) -> None:
    """Refuse ``weights`` (a file of run folder ``folder``, its metadata saying ``step``) when ``summary.json``
    describes another file: another step, or another sha256. A folder still being trained is not checked
    (its summary is written at the end); a folder without a summary has nothing to disagree with."""
    folder, weights = Path(folder), Path(weights)
    summary_path = folder / SUMMARY_FILE
    if weights.name not in DIGESTED or not summary_path.is_file() or live_writer(folder) is not None:
        return
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{summary_path} is not readable JSON ({type(err).__name__}); the run folder is damaged, "
                              "score the weights file itself or train again") from None
    if not isinstance(summary, dict):
        raise CheckpointError(f"{summary_path} is not a run summary; the run folder is damaged")
    expected_step = _summary_step(summary, weights.name)
    problem = None
    if isinstance(expected_step, int) and isinstance(step, int) and step != expected_step:
        problem = f"{weights} is from step {step}, {summary_path} says step {expected_step}"
    digest = (summary.get("files") or {}).get(weights.name) if isinstance(summary.get("files"), dict) else None
    if problem is None and isinstance(digest, str) and file_sha256(weights) != digest:
        problem = f"{weights} does not have the sha256 {digest[:16]}... that {summary_path} records"
    if problem is not None:
        raise CheckpointError(f"{problem}: the folder holds files of two runs, or was changed after its run ended; "
                              "train again into an empty `out` (or pass the weights file itself to score it anyway)")
