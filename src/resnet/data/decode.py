"""Decoding image files to uint8 arrays: any mode (grey, palette, RGBA, CMYK, 16-bit) to grey or RGB.

Small images (CIFAR's 32x32 PNGs) decode fastest with Pillow, one process per core: the per-file
cost is mostly Python, which threads would serialise on the GIL. Large images for training go
through :func:`decode_image_tensor` (torchvision's decoders) in DataLoader workers.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError


# torchvision 0.29 marks its decoders deprecated in favour of TorchCodec, and says so on every call;
# they still work, and Pillow takes over if they go, so that one message is silenced here.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
)

_JPEG_MAGIC = b"\xff\xd8\xff"
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_PARALLEL_FROM = 2048  # below this, starting processes costs more than it saves
_CHUNK = 512


class DecodeFailure(Exception):
    """One file could not be decoded; ``str()`` is a short reason."""


MISSING = "missing: "  # prefixes of DecodeFailure reasons for a path that is no file
FOLDER = "folder: "


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def decode_file(path: str | os.PathLike[str], channels: int | None = 3) -> np.ndarray:
    """uint8 ``[H, W, C]`` with ``C = channels`` (1 or 3); ``None`` keeps grey images grey and makes the rest RGB.

    The EXIF orientation tag is applied (a phone photo stored sideways comes out upright), as in
    :func:`decode_image_tensor`: every path that reads image files goes through one of the two.
    Raises :class:`DecodeFailure` for missing, truncated, corrupt or non-image files; a missing file's
    reason starts with ``missing:``, a folder's with ``folder:``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Large photos (over PIL.Image.MAX_IMAGE_PIXELS, e.g. 12000x12000) decode as asked; only
            # those over twice the limit are refused, as decompression bombs (DecompressionBombError).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # Pillow decodes lazily; this is where truncated files fail
                ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of the (usual) upright photo
                array = to_array(img, channels)
    except FileNotFoundError:
        raise DecodeFailure(f"{MISSING}does not exist") from None
    except IsADirectoryError:
        raise DecodeFailure(f"{FOLDER}is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        text = str(err).strip().splitlines()
        raise DecodeFailure(text[0] if text else type(err).__name__) from None
    # Arrays over Pillow's buffer are read-only; torch.from_numpy needs a writable one.
    return array if array.flags.writeable else array.copy()


def to_array(img: Any, channels: int | None) -> np.ndarray:
    """A decoded PIL image as uint8 ``[H, W, C]`` (``C = channels``; ``None``: grey stays grey), 16-bit scaled to 8."""
    mode = img.mode
    grey = mode in _GREY_MODES
    want = channels if channels is not None else (1 if grey else 3)
    if mode.startswith("I") or mode == "F":
        wide = np.asarray(img)
        if mode == "F":
            grey_array = np.clip(wide, 0, 255).astype(np.uint8)
        else:
            # Pillow's convert("L") clips 16-bit values at 255 instead of scaling them; keep the high byte.
            grey_array = (np.clip(wide.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        array = grey_array[:, :, None]
        return np.ascontiguousarray(np.repeat(array, 3, axis=2) if want == 3 else array)
    if want == 1:
        array = np.asarray(img.convert("L"), dtype=np.uint8)[:, :, None]
    else:
        if mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")  # avoids Pillow's palette-transparency warning
        array = np.asarray(img if mode == "RGB" else img.convert("RGB"), dtype=np.uint8)  # convert() would copy an RGB image
    return np.ascontiguousarray(array)


def read_image(path: str | os.PathLike[str], channels: int = 3) -> Tensor:
    """uint8 ``[C, H, W]`` with ``channels`` 3 (RGB) or 1 (grey), through :func:`decode_file`; a
    :class:`~resnet.errors.DataError` naming the file if it cannot be decoded (eval, predict, serve, explain)."""
    try:
        array = decode_file(path, channels)
    except DecodeFailure as err:
        reason = str(err)
        if reason.startswith(MISSING):
            raise DataError(f"image {path} does not exist; check the path") from None
        if reason.startswith(FOLDER):
            raise DataError(f"{path} is a folder, not an image; pass image files or a folder of them") from None
        raise DataError(f"cannot decode image {path}: {reason}; remove or replace the file") from None
    return _chw(array)


def _chw(array: np.ndarray) -> Tensor:
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
    """:func:`read_image` for an image held in memory (an HTTP upload): the same pixels, modes and
    errors, with ``name`` standing for the path in them.

    An RGB or grey JPEG decoded to RGB goes through torchvision's decoder (:func:`_torchvision_jpeg`),
    which may return a channels-last view; everything else goes through Pillow, as files do.
    """
    fast = _torchvision_jpeg(data) if channels == 3 else None
    if fast is not None:
        return fast
    return read_image(_NamedBytes(data, name), channels)  # type: ignore[arg-type] - Pillow opens file objects


def _torchvision_jpeg(data: bytes) -> Tensor | None:
    """An RGB or grey JPEG as RGB uint8 ``[C, H, W]`` (EXIF orientation applied) by torchvision's
    decoder, or ``None`` for anything else.

    It is the same libjpeg-turbo as Pillow's, so the pixels are the same (identical on all 100 ImageNet
    sample photos and on every EXIF orientation, tested), in 0.9 ms against Pillow's 1.35 ms plus a copy
    for a 500x375 photo, which is most of what ``resnet serve`` spends on an image besides the network.
    CMYK JPEGs (Pillow converts them its own way), grey output (libjpeg's luma is not Pillow's),
    images over Pillow's pixel limit and files torchvision refuses (truncated, damaged) return ``None``:
    Pillow decodes them, or says what is wrong, as for files.
    """
    if not data.startswith(_JPEG_MAGIC) or _header_mode(data) not in ("RGB", "L"):
        return None
    try:
        from torchvision.io import ImageReadMode, decode_image

        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except (ImportError, RuntimeError, ValueError):
        return None


def _header_mode(data: bytes) -> str | None:
    """Pillow's mode for the image in ``data`` from its header alone; ``None`` if Pillow cannot read it
    or it is over ``PIL.Image.MAX_IMAGE_PIXELS`` (left to Pillow's own refusal)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return str(img.mode)
    except Exception:  # noqa: BLE001 - anything unusual is Pillow's to decode or explain
        return None


def decode_image_tensor(path: str | os.PathLike[str], channels: int = 3) -> Tensor:
    """uint8 ``[C, H, W]``: JPEG (incl. CMYK) through torchvision's decoder, everything else through Pillow.

    torchvision 0.29's PNG decoder crashes the whole process (SIGSEGV) on a PNG whose compressed data
    is damaged, and a training run over a folder must survive one bad file; Pillow raises instead.
    16-bit images are scaled to 8 bits. Raises :class:`DecodeFailure`.
    """
    try:
        from torchvision.io import ImageReadMode, decode_image
    except ImportError:
        return _chw(decode_file(path, channels))
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DecodeFailure(err.strerror or type(err).__name__) from None
    if not data:
        raise DecodeFailure("empty file")
    _refuse_decompression_bomb(data)
    if not data.startswith(_JPEG_MAGIC):
        return _chw(decode_file(path, channels))
    try:
        mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
        image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode, apply_exif_orientation=True)
    except (RuntimeError, ValueError):
        return _chw(decode_file(path, channels))
    if image.dtype == torch.uint16:
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    elif image.dtype != torch.uint8:
        raise DecodeFailure(f"unsupported pixel type {image.dtype}")
    return image


def _refuse_decompression_bomb(data: bytes) -> None:
    """torchvision's decoders allocate whatever size a header claims; Pillow reads only the header here
    and refuses images over twice ``PIL.Image.MAX_IMAGE_PIXELS`` (a small file claiming gigapixels)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.open(io.BytesIO(data)).close()  # under twice the limit: decoded as asked, without a warning
    except Image.DecompressionBombError as err:
        raise DecodeFailure(str(err).strip().splitlines()[0]) from None
    except Exception:  # noqa: BLE001 - not Pillow's to judge: the decoders below report unreadable files
        pass


def _decode_chunk(job: tuple[Sequence[str], int | None]) -> tuple[np.ndarray | list[np.ndarray | None], list[str]]:
    paths, channels = job
    arrays: list[np.ndarray | None] = []
    reasons: list[str] = []
    for path in paths:
        try:
            arrays.append(decode_file(path, channels))
            reasons.append("")
        except DecodeFailure as err:
            arrays.append(None)
            reasons.append(str(err))
    first = arrays[0] if arrays else None
    if first is not None and all(a is not None and a.shape == first.shape for a in arrays):
        # One array per chunk pickles back to the parent far faster than hundreds of small ones.
        return np.stack(arrays), reasons  # type: ignore[arg-type]
    return arrays, reasons


def decode_files(
    paths: Sequence[str | os.PathLike[str]], channels: int | None = 3, *, workers: int | None = None
) -> tuple[list[np.ndarray | None], list[str]]:
    """Decode every file, in order: ``arrays[i]`` is ``None`` where ``reasons[i]`` says why it failed."""
    names = [str(p) for p in paths]
    workers = usable_cpus() if workers is None else workers
    jobs = [(names[i : i + _CHUNK], channels) for i in range(0, len(names), _CHUNK)]
    if workers > 1 and len(names) >= _PARALLEL_FROM:
        try:
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=_pool_context()) as pool:
                results = list(pool.map(_decode_chunk, jobs))
            return _join(results)
        except (BrokenProcessPool, OSError, PermissionError):
            pass  # sandboxes without fork/semaphores: decode here instead
    return _join([_decode_chunk(job) for job in jobs])


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers without re-importing torch (seconds each under spawn); the workers only
    # run Pillow and numpy, never torch, so they do not touch the parent's thread pools.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


_Chunk = tuple[np.ndarray | list[np.ndarray | None], list[str]]


def _join(results: list[_Chunk]) -> tuple[list[np.ndarray | None], list[str]]:
    arrays: list[np.ndarray | None] = []
    reasons: list[str] = []
    for a, r in results:
        arrays.extend(list(a))
        reasons.extend(r)
    return arrays, reasons
