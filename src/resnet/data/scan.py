"""Finding the images of an ImageNet-layout folder: ``ROOT/<split>/<class>/<image>``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")

EMPTY_FILE = "empty file"  # the reason scan_folder gives for a file of zero bytes

# Names under which the evaluation split is commonly stored, in the order they are tried.
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val"), "val": ("val", "test")}


@dataclass
class FolderScan:
    """Classes sorted by name (torchvision's ImageFolder order) and the files found under them."""

    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), found while scanning


def split_folder(root: str | os.PathLike[str], split: str | None, *, fallback: bool = True,
                 classes_at_root: bool = False) -> Path:
    """``root/<split>``, the one rule every reader of an image folder follows; :class:`DataError` naming what is missing.

    With ``fallback`` a missing ``test/`` is looked for as ``val/`` and the other way round (``split=None``:
    the evaluation split, ``test/`` else ``val/``); without it the split is a folder name taken as given.
    With ``classes_at_root`` a root that has no split folder at all holds the class folders itself; a split
    folder is never taken for a class, so a split that is absent beside others that exist is an error naming them.
    """
    base = Path(root)
    if not base.is_dir() and classes_at_root:
        raise DataError(f"{base} is not a folder; expected an image folder laid out as ROOT/{split or '<split>'}/<class>/<image>")
    if not base.is_dir():
        raise DataError(f"data folder {base} does not exist; pass the folder that holds {split}/<class>/<image>")
    names = _split_names(split, fallback)
    for name in names:
        if (base / name).is_dir():
            return base / name
    if classes_at_root:
        present = [name for name in SPLIT_FOLDERS if (base / name).is_dir()]
        if not present:
            return base
        have = ", ".join(f"{n}/" for n in present)
        raise DataError(f"{base} has no {' or '.join(f'{w}/' for w in names)} folder but has {have}; "
                        f"choose one of {', '.join(present)} as the split")
    wanted = " or ".join(f"{base / n}/" for n in names)
    raise DataError(f"{wanted} does not exist; expected the layout {base}/{names[0]}/<class>/<image>")


def _split_names(split: str | None, fallback: bool) -> tuple[str, ...]:
    if not fallback:
        return (split or "test",)
    names = SPLIT_FOLDERS.get(split or "test")
    if names is None:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLIT_FOLDERS)}")
    return names


def find_images(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given (whatever their extension) and the image files found under folders, sorted."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            out.append(p)
    return out


def scan_folder(folder: str | os.PathLike[str], *, keep_empty: bool = False) -> FolderScan:
    """Every image file under ``folder/<class>/`` (recursively). Empty files and files that are not
    images by their extension are listed in ``skipped`` so callers can report them; with ``keep_empty``
    empty image files are samples, for a reader that must stop at each bad file, naming it, when it reads it."""
    base = Path(folder)
    if not base.is_dir():
        raise DataError(f"image folder {base} does not exist; check the data path")
    classes = sorted(e.name for e in os.scandir(base) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"{base} has no class folders; expected {base}/<class>/<image>")
    samples: list[tuple[Path, int]] = []
    skipped: list[tuple[str, str]] = []
    for label, name in enumerate(classes):
        for path, size in _files(base / name):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append((str(path), "not an image file (unknown extension)"))
            elif size == 0 and not keep_empty:
                skipped.append((str(path), EMPTY_FILE))
            else:
                samples.append((path, label))
    if not samples:
        raise DataError(f"{base} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its {len(classes)} class folders")
    return FolderScan(base, classes, samples, skipped)


def _files(folder: Path) -> list[tuple[Path, int]]:
    out: list[tuple[Path, int]] = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                out.extend(_files(Path(entry.path)))
            elif entry.is_file():
                out.append((Path(entry.path), entry.stat().st_size))
    return out


class DataWarning(UserWarning):
    """A file that was skipped (corrupt, empty, not an image); training goes on without it."""


def report_skipped(path: str, reason: str, *, strict: bool) -> None:
    """Warn about one unusable file, or with ``strict`` stop at it."""
    import warnings

    if strict:
        raise DataError(
            f"cannot use image {path}: {reason}; remove or replace the file"
        )
    warnings.warn(f"skipping {path}: {reason}", DataWarning, stacklevel=3)
