"""Decoding image files into uint8 tensors, with one-line errors that name the file."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

import torch
from torch import Tensor

from ..data.scan import IMAGE_EXTENSIONS, SPLIT_FOLDERS
from ..errors import DataError



def read_image(path: str | os.PathLike[str], channels: int = 3) -> Tensor:
    """uint8 ``[C, H, W]`` with ``channels`` 3 (RGB) or 1 (grey); :class:`DataError` if it cannot be decoded.

    Decoded by :func:`resnet.data.decode.decode_file`, the decoder of the training folders too (EXIF
    orientation applied, 16-bit images scaled to 8 bits, decompression bombs refused).
    """
    from ..data.decode import FOLDER, MISSING, DecodeFailure, decode_file

    try:
        array = decode_file(path, channels)
    except DecodeFailure as err:
        reason = str(err)
        if reason.startswith(MISSING):
            raise DataError(f"image {path} does not exist; check the path") from None
        if reason.startswith(FOLDER):
            raise DataError(f"{path} is a folder, not an image; pass image files or a folder of them") from None
        raise DataError(f"cannot decode image {path}: {reason}; remove or replace the file") from None
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class _NamedBytes(io.BytesIO):
    """In-memory image bytes that :func:`read_image` names in its messages like a file path."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self._name = name

    def __str__(self) -> str:
        return self._name

    __repr__ = __str__


def read_image_bytes(data: bytes, channels: int = 3, name: str = "upload") -> Tensor:
    """:func:`read_image` for an image held in memory (an HTTP upload): the same decoder, modes and
    errors, with ``name`` standing for the path in them."""
    return read_image(_NamedBytes(data, name), channels)  # type: ignore[arg-type] - Pillow opens file objects


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given (whatever their extension) and the image files found under folders, sorted."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            out.extend(found)
        else:
            out.append(p)
    return out


def scan_class_folders(root: str | os.PathLike[str], split: str | None = None) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names and ``(file, class index)`` pairs of an ImageNet-layout folder ``ROOT/<split>/<class>/<image>``.

    ``ROOT`` itself may hold the class folders when it has no split folders (train/, val/, test/). A
    split folder is never taken for a class: asking for a split that is absent beside others that exist
    is an error naming them. ``split=None`` is the evaluation split, ``test/`` else ``val/``. Classes are
    sorted by name (torchvision's ImageFolder order); files that are not images by extension are left
    out, files that are but cannot be decoded fail later, when read, with their name.
    """
    base = split_or_root(root, split)
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{base} has no class folders; expected {base}/<class>/<image>")
    samples = [
        (f, i)
        for i, name in enumerate(classes)
        for f in sorted((base / name).rglob("*"))
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")
    ]
    if not samples:
        raise DataError(f"{base} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its {len(classes)} class folders")
    return classes, samples


def split_or_root(root: str | os.PathLike[str], split: str | None) -> Path:
    """``root/<split>`` if it exists; ``root`` itself if it has no split folders; else a :class:`DataError`."""
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{base} is not a folder; expected an image folder laid out as ROOT/{split or '<split>'}/<class>/<image>")
    wanted = SPLIT_FOLDERS["test"] if split is None else (split,)
    for name in wanted:
        if (base / name).is_dir():
            return base / name
    present = [name for name in SPLIT_FOLDERS if (base / name).is_dir()]
    if present:
        have = ", ".join(f"{n}/" for n in present)
        raise DataError(f"{base} has no {' or '.join(f'{w}/' for w in wanted)} folder but has {have}; "
                        f"choose one of {', '.join(present)} as the split")
    return base
