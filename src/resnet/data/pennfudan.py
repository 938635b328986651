"""The Penn-Fudan pedestrian set (Wang et al., ACCV 2007): photos, instance masks, boxes from the masks.

Layout (the ``PennFudanPed`` folder of the published archive): ``PNGImages/<name>.png``, ``PedMasks/<name>_mask.png``
(0 = background, 1..N = one value per pedestrian) and ``Annotation/<name>.txt`` (PASCAL v1.00 text, which
lists the N objects and their labels). Samples are decoded once and resized (shorter side to ``size``,
longer side at most ``2 * size``) into memory: the set is 170 photos.

Bad samples are skipped and counted, as the classification data path does (``strict=True``: the first one
is a :class:`~resnet.errors.DataError`): an unreadable photo or mask, a mask of another size than its
photo, a mask with no objects, an object id beyond those its annotation lists, an unknown object label.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .decode import DecodeFailure, decode_file
from .scan import DataWarning

CLASSES = ("background", "pedestrian")
# Object labels of the annotations, and the class each one is.
LABEL_CLASSES = {"PASpersonWalking": 1, "PASpersonStanding": 1}
IMAGES, MASKS, ANNOTATIONS = "PNGImages", "PedMasks", "Annotation"
MAX_SIDE_FACTOR = 2  # longer side at most this many times ``size``
_OBJECT_LABEL = re.compile(r'^Original label for object (\d+) "([^"]*)"', re.M)


@dataclass(frozen=True)
class DenseSample:
    """One photo with its objects: ``image`` float ``[3, H, W]`` in [0, 1], ``boxes`` ``[N, 4]`` (x1, y1, x2,
    y2, pixels), ``labels`` ``[N]`` (1 = pedestrian), ``masks`` uint8 ``[N, H, W]``."""

    name: str
    image: Tensor
    boxes: Tensor
    labels: Tensor
    masks: Tensor

    def semantic(self) -> Tensor:
        """int64 ``[H, W]``: the class of each pixel (0 = background)."""
        out = torch.zeros(self.image.shape[1:], dtype=torch.int64)
        for mask, label in zip(self.masks, self.labels):
            out[mask.bool()] = int(label)
        return out


@dataclass
class DenseData:
    """Samples of one split, and the files skipped on the way as ``(path, reason)``."""

    samples: list[DenseSample]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    classes: tuple[str, ...] = CLASSES


class SampleError(Exception):
    """One sample is unusable; ``str()`` names the file and the reason."""


@dataclass(frozen=True)
class PennFudanItem:
    name: str
    image: Path
    mask: Path
    annotation: Path | None


def scan_pennfudan(root: str | Path) -> tuple[list[PennFudanItem], list[tuple[str, str]]]:
    """Photos that have a mask, sorted by name, and the photos without one as ``(path, reason)``."""
    root = Path(root)
    images = root / IMAGES
    if not images.is_dir() or not (root / MASKS).is_dir():
        raise DataError(f"{root} is not a Penn-Fudan folder (it needs {IMAGES}/ and {MASKS}/); point `data_dir` at "
                        "the PennFudanPed folder of the published archive")
    items, missing = [], []
    for photo in sorted(images.glob("*.png")):
        mask = root / MASKS / f"{photo.stem}_mask.png"
        annotation = root / ANNOTATIONS / f"{photo.stem}.txt"
        if not mask.is_file():
            missing.append((str(photo), f"no mask {MASKS}/{mask.name}"))
            continue
        items.append(PennFudanItem(photo.stem, photo, mask, annotation if annotation.is_file() else None))
    if not items:
        raise DataError(f"{images} holds no .png photo with a mask in {root / MASKS}; check `data_dir`")
    return items, missing


def read_mask(path: Path) -> np.ndarray:
    """The object ids of a mask (grey or palette PNG) as uint8/int ``[H, W]``; raises :class:`DecodeFailure`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "P", "I", "I;16"):
                raise DecodeFailure(f"mode {img.mode}: a mask holds one object id per pixel (grey or palette PNG)")
            return np.asarray(img).astype(np.int64)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        raise DecodeFailure(str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__) from None


def annotation_labels(path: Path | None) -> dict[int, str] | None:
    """Object id -> label from an annotation file; ``None`` without one."""
    if path is None:
        return None
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise SampleError(f"{path}: unreadable annotation ({err.strerror or type(err).__name__})") from None
    return {int(i): label for i, label in _OBJECT_LABEL.findall(text)}


def objects_of(ids: np.ndarray, labels: dict[int, str] | None, mask_path: Path) -> tuple[list[int], list[int]]:
    """(object ids, class ids) in a mask, checked against its annotation."""
    present = [int(v) for v in np.unique(ids) if v != 0]
    if not present:
        raise SampleError(f"{mask_path}: the mask has no objects (every pixel is background 0)")
    if labels is None:
        return present, [1] * len(present)
    beyond = [v for v in present if v not in labels]
    if beyond:
        raise SampleError(f"{mask_path}: object id {beyond[0]} is out of range: its annotation lists "
                          f"{len(labels)} object(s), ids 1..{len(labels)}")
    unknown = [labels[v] for v in present if labels[v] not in LABEL_CLASSES]
    if unknown:
        raise SampleError(f"{mask_path}: object label {unknown[0]!r} is not a known class "
                          f"({', '.join(LABEL_CLASSES)} are pedestrians)")
    return present, [LABEL_CLASSES[labels[v]] for v in present]


def scaled_size(h: int, w: int, size: int) -> tuple[int, int]:
    """Shorter side ``size``, longer side at most ``MAX_SIDE_FACTOR * size`` (torchvision's min/max_size rule)."""
    scale = min(size / min(h, w), MAX_SIDE_FACTOR * size / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def read_sample(item: PennFudanItem, size: int) -> DenseSample:
    """Decode, check and resize one sample; raises :class:`SampleError` naming the file and the problem."""
    try:
        photo = decode_file(item.image, 3)
    except DecodeFailure as err:
        raise SampleError(f"{item.image}: unreadable photo ({err})") from None
    try:
        ids = read_mask(item.mask)
    except DecodeFailure as err:
        raise SampleError(f"{item.mask}: unreadable mask ({err})") from None
    if ids.shape != photo.shape[:2]:
        raise SampleError(f"{item.mask}: the mask is {ids.shape[1]}x{ids.shape[0]} but its photo is "
                          f"{photo.shape[1]}x{photo.shape[0]}; a mask must have its photo's size")
    present, classes = objects_of(ids, annotation_labels(item.annotation), item.mask)
    h, w = scaled_size(*ids.shape, size)
    image = torch.from_numpy(resize_array(photo, h, w, smooth=True)).permute(2, 0, 1).float().div(255)
    small = torch.from_numpy(resize_array(ids, h, w, smooth=False))
    masks = torch.stack([small == v for v in present]).to(torch.uint8)
    keep = masks.flatten(1).amax(1) > 0  # an object of a pixel or two can vanish in the resize
    if not bool(keep.any()):
        raise SampleError(f"{item.mask}: every object is smaller than a pixel at {size} px")
    masks = masks[keep]
    labels = torch.tensor(classes, dtype=torch.int64)[keep]
    return DenseSample(item.name, image, boxes_from_masks(masks), labels, masks)


def resize_array(array: np.ndarray, h: int, w: int, *, smooth: bool) -> np.ndarray:
    """Pillow resize of an ``[H, W(, 3)]`` array: antialiased bilinear for photos, nearest for object ids."""
    from PIL import Image

    if array.shape[:2] == (h, w):
        return array
    if smooth:
        return np.array(Image.fromarray(array).resize((w, h), Image.Resampling.BILINEAR))
    return np.array(Image.fromarray(array.astype(np.int32)).resize((w, h), Image.Resampling.NEAREST)).astype(np.int64)


def boxes_from_masks(masks: Tensor) -> Tensor:
    """float ``[N, 4]`` boxes enclosing each mask, in torchvision's convention (x2, y2 one past the last pixel)."""
    from torchvision.ops import masks_to_boxes

    boxes = masks_to_boxes(masks.bool())
    return boxes + torch.tensor([0.0, 0.0, 1.0, 1.0])


def split_items(items: list[PennFudanItem], test_images: int) -> tuple[list[PennFudanItem], list[PennFudanItem]]:
    """A fixed split (the same for every seed and run): every k-th photo by name goes to the test set."""
    if not 0 <= test_images < len(items):
        raise DataError(f"test_images={test_images} leaves no training photos out of {len(items)}")
    if test_images == 0:
        return list(items), []
    picked = set(np.linspace(0, len(items) - 1, test_images).round().astype(int).tolist())
    return [it for i, it in enumerate(items) if i not in picked], [it for i, it in enumerate(items) if i in picked]


def load_pennfudan(root: str | Path, size: int, *, test_images: int = 50, limit: int | None = None,
                   strict: bool = False) -> tuple[DenseData, DenseData]:
    """(train, test) samples at ``size`` px; ``limit`` keeps the first N photos (quick runs, tests)."""
    items, missing = scan_pennfudan(root)
    if limit is not None:
        items = items[:limit]
    train_items, test_items = split_items(items, min(test_images, len(items) - 1))
    skipped = list(missing)
    if strict and skipped:
        raise DataError(f"{skipped[0][0]}: {skipped[0][1]} (without `strict` such photos are skipped and counted)")
    out = []
    for part in (train_items, test_items):
        data = DenseData([])
        for item in part:
            try:
                data.samples.append(read_sample(item, size))
            except SampleError as err:
                if strict:
                    raise DataError(f"{err} (without `strict` such samples are skipped and counted)") from None
                data.skipped.append((str(item.image), str(err)))
                warnings.warn(f"skipping {err}", DataWarning, stacklevel=2)
        out.append(data)
    out[0].skipped[:0] = skipped
    if not out[0].samples:
        raise DataError(f"no usable training sample in {root} ({len(out[0].skipped)} skipped: {out[0].skipped[0][1]})"
                        if out[0].skipped else f"no training sample in {root}")
    return out[0], out[1]
