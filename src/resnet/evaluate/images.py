"""Decoding image files into uint8 tensors, with one-line errors that name the file."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_image(path: str | os.PathLike[str], channels: int = 3) -> Tensor:
    """uint8 ``[C, H, W]`` with ``channels`` 3 (RGB) or 1 (grey); :class:`DataError` if it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    from ..data.decode import _to_array  # 16-bit images scaled to 8 bits, not clipped to white

    try:
        with Image.open(path) as img:
            img.load()
            array = _to_array(img, channels)
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not an image; pass image files or a folder of them") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot decode image {path}: {reason}; remove or replace the file") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


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

    ``ROOT`` itself may hold the class folders when it has no ``<split>`` folder. Classes are sorted by
    name (torchvision's ImageFolder order); files that are not images by extension are left out, files
    that are but cannot be decoded fail later, when read, with their name.
    """
    base = Path(root)
    if split and (base / split).is_dir():
        base = base / split
    if not base.is_dir():
        raise DataError(f"{base} is not a folder; expected an image folder laid out as ROOT/{split or '<split>'}/<class>/<image>")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        hint = f" and no {split}/ folder" if split else ""
        raise DataError(f"{base} has no class folders{hint}; expected {base}/<class>/<image> (or pass the right --split)")
    samples = [
        (f, i)
        for i, name in enumerate(classes)
        for f in sorted((base / name).rglob("*"))
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")
    ]
    if not samples:
        raise DataError(f"{base} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its {len(classes)} class folders")
    return classes, samples
