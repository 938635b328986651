"""The cache manifest: the full sha256 of every named weights file, and where it came from.

``$RESNET_HOME/weights/manifest.json`` maps ``NAME:TAG`` to ``{"sha256", "basis", "file", "size", "recorded"}``:

- ``basis`` ``"published"``: the sha256 the publisher gives in full (the Hugging Face hub's LFS hash), checked on
  download;
- ``basis`` ``"recorded"``: where only a prefix is published (torchvision's and akamaster's file names: 32 bits, which
  catch corruption but not deliberate tampering), the full sha256 of the file as first downloaded or imported, once it
  matched that prefix. From then on the file must match it in full.

Writes are atomic and made under a lock (``manifest.json.lock``), so processes sharing a cache do not lose records.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Iterator

from ..utils.atomic import atomic_write_text

MANIFEST = "manifest.json"
PUBLISHED, RECORDED = "published", "recorded"
BASES = (PUBLISHED, RECORDED)


def manifest_path(weights_dir: Path) -> Path:
    return weights_dir / MANIFEST


def read_manifest(weights_dir: Path) -> dict[str, dict[str, Any]]:
    """``NAME:TAG`` → record; a missing or damaged manifest reads as empty (records are made again, prefix-checked)."""
    try:
        data = json.loads(manifest_path(weights_dir).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {name: rec for name, rec in files.items()
            if isinstance(rec, dict) and isinstance(rec.get("sha256"), str) and len(rec["sha256"]) == 64
            and rec.get("basis") in BASES}


def lookup(weights_dir: Path, name: str, filename: str) -> dict[str, Any] | None:
    """The record of ``name`` when it is of ``filename`` (a new publication under the same name has another file name:
    the old record does not apply to it)."""
    found = read_manifest(weights_dir).get(name)
    return found if found is not None and found.get("file") == filename else None


@contextlib.contextmanager
def _locked(weights_dir: Path) -> Iterator[None]:
    import fcntl

    weights_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(weights_dir / (MANIFEST + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record(weights_dir: Path, name: str, filename: str, path: Path, sha256: str, basis: str) -> dict[str, Any]:
    """Keep ``sha256`` as the full hash of ``name``'s file ``filename`` (now at ``path``), on ``basis``."""
    entry = {"sha256": sha256, "basis": basis, "file": filename, "size": path.stat().st_size,
             "recorded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    with _locked(weights_dir):
        files = read_manifest(weights_dir)
        files[name] = entry
        atomic_write_text(manifest_path(weights_dir), json.dumps({"version": 1, "files": files}, indent=1, sort_keys=True) + "\n")
    return entry

