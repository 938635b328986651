"""Reading a folder of small same-sized images (``<split>/<class>/<image>``) into one uint8 tensor."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .decode import decode_files
from .scan import report_skipped, scan_folder


@dataclass
class DecodedFolder:
    images: Tensor  # uint8 [N, C, H, W]
    labels: Tensor  # int64 [N]
    classes: list[str]
    order: str  # "index" when files are named by their position in an official order, else "class"
    skipped: list[tuple[str, str]] = field(default_factory=list)


def read_image_folder(folder: str | os.PathLike[str], *, channels: int | None = 3, strict: bool = False,
                      workers: int | None = None) -> DecodedFolder:
    """Decode every image under ``folder/<class>/``; all must have one size.

    ``channels=None`` keeps an all-grey folder at one channel. Files named ``<integer>.<ext>`` with
    distinct integers are ordered by that integer (the CIFAR PNG exports name each image by its index
    in the official batches), everything else class by class, then by name. Unusable files are
    warned about and skipped, or with ``strict`` raise :class:`DataError`.
    """
    scan = scan_folder(folder)
    for path, reason in scan.skipped:
        report_skipped(path, reason, strict=strict)
    samples = scan.samples
    order = "class"
    indices = [_integer_stem(p) for p, _ in samples]
    if all(i is not None for i in indices) and len(set(indices)) == len(indices):
        samples = [s for _, s in sorted(zip(indices, samples), key=lambda pair: pair[0])]
        order = "index"

    arrays, reasons = decode_files([p for p, _ in samples], channels, workers=workers)
    skipped = list(scan.skipped)
    kept: list[np.ndarray] = []
    labels: list[int] = []
    first_kept: Path | None = None
    for (path, label), array, reason in zip(samples, arrays, reasons):
        if array is None:
            report_skipped(str(path), reason, strict=strict)
            skipped.append((str(path), reason))
            continue
        if kept and array.shape[:2] != kept[0].shape[:2]:
            h, w = array.shape[:2]
            h0, w0 = kept[0].shape[:2]
            raise DataError(
                f"{path} is {w}x{h} but {first_kept} is {w0}x{h0}: `data` folder as small images needs one image size; "
                "photos of any size train with `recipe` finetune (or `init`), and evaluate with `data_dir` alone"
            )
        first_kept = first_kept or path
        kept.append(array)
        labels.append(label)
    if not kept:
        raise DataError(f"no image under {scan.root} could be decoded; check the files")
    if any(a.shape[2] != kept[0].shape[2] for a in kept):
        kept = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in kept]  # mixed grey and colour
    images = torch.from_numpy(np.stack(kept)).permute(0, 3, 1, 2).contiguous()
    return DecodedFolder(images, torch.tensor(labels, dtype=torch.int64), scan.classes, order, skipped)


def _integer_stem(path: Path) -> int | None:
    stem = path.stem
    return int(stem) if stem.isdigit() else None
