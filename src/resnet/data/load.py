"""``load_arrays``: every small data set as one decoded uint8 tensor, cached on disk after the first read."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import UsageError
from .arrays import ArrayDataset
from .cache import CacheEntry, default_cache_dir, source_fingerprint
from .cifar import CIFAR_SPECS, cache_source, locate_cifar, read_cifar
from .digits import load_digits_arrays
from .folder_arrays import read_image_folder
from .registry import ARRAY_DATASETS, existing_dir
from .scan import report_skipped, split_folder
from .stats import channel_stats

DATASETS: tuple[str, ...] = ARRAY_DATASETS  # the names load_arrays reads; the registry owns them
SPLITS: tuple[str, ...] = ("train", "test")


def load_arrays(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    download: bool = False,
    strict: bool = False,
) -> ArrayDataset:
    """Load ``split`` of data set ``name`` (one of :data:`DATASETS`) as uint8 images and int64 labels.

    ``data_dir`` for CIFAR: a folder with ``train/<class>/<index>.png`` and ``test/`` (images come out in
    the official order), the official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``, the folder
    it extracts to, or a folder holding one of those. ``download=True`` fetches the archive into
    ``data_dir`` (or ``<cache_dir>/downloads``) when there is none. ``folder``: any ``train/`` and
    ``test/`` (or ``val/``) tree of same-sized images; an all-grey folder stays one channel. ``digits``
    needs nothing. Decoded data is cached in ``cache_dir`` (``$RESNET_CACHE_DIR`` or ``~/.cache/resnet``).
    Unreadable images are skipped with a warning (``extra["skipped"]``), or with ``strict`` raise.
    """
    if name not in DATASETS:
        raise UsageError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if split == "val" and name == "folder":
        split = "test"  # split_folder tries val/ as well
    if split not in SPLITS:
        hint = " (for a validation split use holdout_split on the train split)" if split == "val" else ""
        raise UsageError(f"unknown split {split!r} for {name}; use train or test{hint}")
    if name == "digits":
        return load_digits_arrays(split)
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if name == "folder":
        if data_dir is None:
            raise UsageError(
                "the folder data set needs data_dir (`data_dir`): a folder with train/<class>/<image> and test/"
            )
        return _load_folder(Path(data_dir).expanduser(), split, cache_root, strict)
    return _load_cifar(name, split, data_dir, cache_root, download, strict)


def open_arrays(name: str, split: str, data_dir: str | os.PathLike[str] | None, *, strict: bool = False) -> "ArrayDataset":
    """``split`` of the array data set ``name`` (one of :data:`ARRAY_DATASETS`; decoded once, cached), read from
    ``data_dir`` when given; a folder data set's name is refused as unknown, naming the array data sets."""
    existing_dir(data_dir)
    return load_arrays(name, split, data_dir, download=False, strict=strict)


def _load_cifar(
    name: str, split: str, data_dir: str | Path | None, cache_root: Path, download: bool, strict: bool
) -> ArrayDataset:
    spec = CIFAR_SPECS[name]
    source = locate_cifar(spec, data_dir, download_to=cache_root / "downloads", allow_download=download)
    origin = cache_source(source, split)
    entry = CacheEntry(cache_root / "arrays", name, split, origin, source_fingerprint(origin, name, split, source.kind))
    cached = entry.load()
    if cached is not None:
        return _replay_skipped(cached, strict)
    start = time.perf_counter()
    arrays = read_cifar(spec, source, split, strict=strict)
    ds = ArrayDataset(
        images=arrays.images,
        labels=arrays.labels,
        classes=arrays.classes,
        mean=spec.mean,
        std=spec.std,
        name=name,
        source=str(origin),
        extra={"skipped": [list(s) for s in arrays.skipped], "decode_seconds": round(time.perf_counter() - start, 3)},
    )
    entry.save(ds)
    return ds


def _load_folder(root: Path, split: str, cache_root: Path, strict: bool) -> ArrayDataset:
    folder = split_folder(root, split)
    entry = CacheEntry(cache_root / "arrays", "folder", split, folder, source_fingerprint(folder, "folder", split))
    cached = entry.load()
    if cached is None:
        start = time.perf_counter()
        decoded = read_image_folder(folder, channels=None, strict=strict)
        mean, std = channel_stats(decoded.images)
        cached = ArrayDataset(
            images=decoded.images,
            labels=decoded.labels,
            classes=decoded.classes,
            mean=mean,
            std=std,
            name="folder",
            source=str(folder),
            extra={
                "skipped": [list(s) for s in decoded.skipped],
                "order": decoded.order,
                "stats_from": split,
                "decode_seconds": round(time.perf_counter() - start, 3),
            },
        )
        entry.save(cached)
    else:
        cached = _replay_skipped(cached, strict)
    if split != "train" and (root / "train").is_dir():
        # Normalise with the training statistics, as the network saw them.
        train = load_arrays("folder", "train", root, cache_dir=cache_root, strict=strict)
        if train.channels == cached.channels:
            cached.mean, cached.std = train.mean, train.std
            cached.extra["stats_from"] = "train"
    return cached


def _replay_skipped(ds: ArrayDataset, strict: bool) -> ArrayDataset:
    """A cached decode remembers which files it skipped; report them again (or refuse, when strict)."""
    for item in list(ds.extra.get("skipped", [])):  # type: ignore[arg-type]
        path, reason = item
        report_skipped(str(path), str(reason), strict=strict)
    return ds


__all__ = ["DATASETS", "SPLITS", "load_arrays", "open_arrays"]
