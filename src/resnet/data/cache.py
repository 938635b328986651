"""Decode once: decoded data sets kept on disk as uint8 safetensors, keyed by what they were read from.

The key hashes the absolute source path and, for every file under it, its relative name, size and
modification time, so editing, adding or removing a file makes a new entry instead of serving stale
images. Safetensors holds only raw tensors plus string metadata, so reading a cache runs no code.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..utils.atomic import atomic_path
from ..utils.paths import default_cache_dir
from .arrays import ArrayDataset

CACHE_FORMAT = "1"  # bump when the decoded content of an unchanged source would differ


def source_fingerprint(source: str | os.PathLike[str], *extra: str) -> str:
    """SHA-256 over the absolute path, the (name, size, mtime) of every file under it, and ``extra``."""
    root = Path(source).resolve()
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, str(root), *extra):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    if root.is_file():
        st = root.stat()
        digest.update(f"{st.st_size}:{st.st_mtime_ns}\n".encode())
    else:
        for rel, size, mtime in sorted(_listing(root)):
            digest.update(f"{rel}\0{size}:{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _listing(root: Path) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=True):
                    stack.append((Path(entry.path), rel + "/"))
                elif entry.is_file(follow_symlinks=True):
                    st = entry.stat(follow_symlinks=True)
                    out.append((rel, st.st_size, st.st_mtime_ns))
    return out


@dataclass(frozen=True)
class CacheEntry:
    """Where one decoded data set lives: ``<dir>/<name>-<split>-<path hash>-<content hash>.safetensors``."""

    directory: Path
    name: str
    split: str
    source: Path
    key: str

    @property
    def stem(self) -> str:
        path_hash = hashlib.sha256(str(self.source.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:8]
        return f"{self.name}-{self.split}-{path_hash}"

    @property
    def path(self) -> Path:
        return self.directory / f"{self.stem}-{self.key[:20]}.safetensors"

    def load(self) -> ArrayDataset | None:
        """The cached data set, or ``None`` when there is none (an unreadable entry is warned about and ignored)."""
        path = self.path
        if not path.is_file():
            return None
        try:
            with safe_open(path, framework="pt") as fh:
                meta = json.loads(fh.metadata()["resnet"])
                if meta.get("key") != self.key:
                    return None
                images, labels = fh.get_tensor("images"), fh.get_tensor("labels")
            return ArrayDataset(
                images=images,
                labels=labels,
                classes=list(meta["classes"]),
                mean=tuple(meta["mean"]),
                std=tuple(meta["std"]),
                name=meta["name"],
                source=meta["source"],
                extra=dict(meta.get("extra", {})),
            )
        except (SafetensorError, OSError, KeyError, ValueError, TypeError) as err:
            warnings.warn(f"ignoring unreadable data cache {path} ({err}); it will be rebuilt", stacklevel=3)
            return None

    def save(self, ds: ArrayDataset) -> Path | None:
        """Write atomically, then drop older entries of the same source (they can never match again).

        A cache that cannot be written (disk full, read-only folder) is warned about, not fatal:
        the data set is in memory already; ``None`` is returned then.
        """
        try:
            return self._save(ds)
        except OSError as err:
            warnings.warn(f"cannot write the data cache {self.path} ({err}); going on without it "
                          "(set RESNET_CACHE_DIR to a writable folder)", stacklevel=3)
            return None

    def _save(self, ds: ArrayDataset) -> Path:
        meta = {
            "key": self.key,
            "classes": list(ds.classes),
            "mean": list(ds.mean),
            "std": list(ds.std),
            "name": ds.name,
            "source": ds.source,
            "extra": _jsonable(ds.extra),
        }
        tensors = {"images": ds.images.contiguous(), "labels": ds.labels.to(torch.int64).contiguous()}
        target = self.path
        with atomic_path(target) as tmp:
            save_file(tensors, str(tmp), metadata={"resnet": json.dumps(meta)})
        for old in self.directory.glob(f"{self.stem}-*.safetensors"):
            if old != target:
                old.unlink(missing_ok=True)
        return target


def _jsonable(extra: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in extra.items():
        try:
            json.dumps(value)
        except TypeError:
            continue  # tensors and other objects are rebuilt by the reader, not cached
        out[key] = value
    return out
