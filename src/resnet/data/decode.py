"""Decoding image files to uint8 arrays: any mode (grey, palette, RGBA, CMYK, 16-bit) to grey or RGB.

One decoder for every path (predict, eval, serve, training): :func:`decode_checked`, the fastest decoder per
format that gives Pillow's pixels (docs/results/decode/): RGB and grey JPEGs through libjpeg-turbo by
simplejpeg (which also reports the corrupt data Pillow swallows, and decodes large photos at reduced scale),
8-bit RGB PNGs and RGB WebPs through TorchCodec, everything else (GIF, TIFF, BMP, CMYK JPEGs, 16-bit, palette,
alpha, damaged files) through Pillow. Small images (CIFAR's 32x32 PNGs)
decode fastest one process per core: the per-file cost is mostly Python, which threads would serialise on the GIL.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError


_JPEG_MAGIC = b"\xff\xd8\xff"
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
DRAFT_MARGIN = 8  # a JPEG decoded at reduced scale keeps at least this many times its resize (chosen: docs/results/decode/)
_PARALLEL_FROM = 2048  # below this, starting processes costs more than it saves
_CHUNK = 512


class DecodeFailure(Exception):
    """One file could not be decoded; ``str()`` is a short reason."""


MISSING = "missing: "  # prefixes of DecodeFailure reasons for a path that is no file
FOLDER = "folder: "
DAMAGED = "damaged: "  # ... and for a file that decodes only with recovery (Decoded.damaged follows)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Decoded:
    """A decoded image: uint8 ``[H, W, C]`` pixels, and ``damaged``: what the decoder said when the file decoded only
    with recovery (libjpeg's "Corrupt JPEG data: ...", a truncated file padded), else ``None``."""

    pixels: np.ndarray
    damaged: str | None = None


def decode_file(path: str | os.PathLike[str], channels: int | None = 3, *, min_side: int | None = None) -> np.ndarray:
    """uint8 ``[H, W, C]`` with ``C = channels`` (1 or 3); ``None`` keeps grey images grey and makes the rest RGB.

    The EXIF orientation tag is applied (a phone photo stored sideways comes out upright). For data sets
    (training, arrays): a damaged file (see :class:`Decoded`) is a :class:`DecodeFailure` whose reason starts
    with ``damaged:``, so it is skipped and counted with the others; :func:`decode_checked` returns its
    recovered pixels instead (predict, serve). ``min_side``: see :func:`decode_checked`.
    Raises :class:`DecodeFailure` for missing, damaged, corrupt or non-image files; a missing file's
    reason starts with ``missing:``, a folder's with ``folder:``.
    """
    decoded = decode_checked(path, channels, min_side=min_side)
    if decoded.damaged:
        raise DecodeFailure(f"{DAMAGED}{decoded.damaged}")
    return decoded.pixels


def decode_checked(source: str | os.PathLike[str] | bytes, channels: int | None = 3, *, min_side: int | None = None) -> Decoded:
    """:func:`decode_file` for a path or the bytes of a file, telling whether it was damaged.

    ``min_side``: the shorter side the caller resizes to (the network's resize). A JPEG much larger is decoded
    at a reduced scale by libjpeg (1/2 to 1/8, DCT scaling, as Pillow's ``draft``), keeping its shorter side at
    least :data:`DRAFT_MARGIN` times ``min_side``: a 12000x12000 photo decodes at 1500x1500 for a
    32-pixel resize (CIFAR networks), 3000x3000 for a 256-pixel one. At this margin top-1 agreed with a full decode
    plus resize on every ImageNet sample and Caltech photo; at 2 and 4 it did not (docs/results/decode/). ``None``: full size.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except FileNotFoundError:
            raise DecodeFailure(f"{MISSING}does not exist") from None
        except IsADirectoryError:
            raise DecodeFailure(f"{FOLDER}is a folder, not an image") from None
        except OSError as err:
            raise DecodeFailure(err.strerror or type(err).__name__) from None
    if not data:
        raise DecodeFailure("empty file")
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Large photos (over PIL.Image.MAX_IMAGE_PIXELS, e.g. 12000x12000) decode as asked; only
            # those over twice the limit are refused, as decompression bombs (DecompressionBombError).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fast = _libjpeg(data, img, channels, min_side) or _torchcodec(data, img, channels)
                if fast is not None:
                    return fast
                damaged = _load(img)
                ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of the (usual) upright photo
                array = to_array(img, channels)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        text = str(err).strip().splitlines()
        raise DecodeFailure(text[0] if text else type(err).__name__) from None
    # Arrays over Pillow's buffer are read-only; torch.from_numpy needs a writable one.
    return Decoded(array if array.flags.writeable else array.copy(), damaged)


_PADDING = threading.Lock()


def _load(img: Any) -> str | None:
    """Decodes a Pillow image in place; a truncated file is decoded again with Pillow's padding, and said to be.
    Pillow's switch for padding is process-wide: it is on only for that second decode, under a lock (a file
    truncated in another thread in that same instant would pass unmarked)."""
    from PIL import ImageFile

    try:
        img.load()  # Pillow decodes lazily; this is where truncated files fail
        return None
    except OSError as err:
        if "truncated" not in str(err):
            raise
        reason = str(err).strip().splitlines()[0]
    img.fp.seek(0)
    with _PADDING:
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            img.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = False
    return f"{reason}; the missing part was padded"


def _libjpeg(data: bytes, img: Any, channels: int | None, min_side: int | None) -> Decoded | None:
    """An RGB or grey JPEG decoded by libjpeg-turbo through simplejpeg (the pixels Pillow gives, tested), which
    also reports the corrupt data libjpeg recovers from (Pillow keeps quiet about it) and decodes at a reduced
    scale; ``None`` for anything else (CMYK, or a file simplejpeg cannot read: Pillow decodes or explains it)."""
    if img.format != "JPEG" or img.mode not in ("RGB", "L"):
        return None
    import simplejpeg

    width, height = img.size
    scale = {}
    if min_side is not None and min(width, height) >= 2 * DRAFT_MARGIN * min_side:
        side = DRAFT_MARGIN * min_side
        scale = {"min_height": side} if height <= width else {"min_width": side}
    space = "GRAY" if img.mode == "L" else "RGB"
    damaged = None
    try:
        array = simplejpeg.decode_jpeg(data, space, **scale)
    except ValueError as err:
        damaged = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                array = simplejpeg.decode_jpeg(data, space, strict=False, **scale)
        except ValueError:
            return None  # beyond recovery: Pillow says why, in its words
    transpose = _exif_orientation(img)
    grey = array.shape[2] == 1 if array.ndim == 3 else True
    want = channels if channels is not None else (1 if grey else 3)
    if array.ndim == 2:
        array = array[:, :, None]
    if want == 1 and not grey:
        from PIL import Image

        array = np.asarray(Image.fromarray(array).convert("L"))[:, :, None]  # Pillow's luma, as for other files
    elif want == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if transpose is not None:
        array = _orient(array, transpose)
    return Decoded(np.ascontiguousarray(array), damaged)


_PNG_END = b"IEND\xaeB`\x82"


def _torchcodec(data: bytes, img: Any, channels: int | None) -> Decoded | None:
    """An 8-bit RGB PNG or an RGB WebP, decoded to RGB by TorchCodec (faster than Pillow, the same pixels:
    docs/results/decode/); ``None`` for anything else, or a file that is not whole (a PNG not
    ending in IEND, a WebP shorter than its RIFF header says) or that TorchCodec refuses: Pillow decodes it,
    pads a truncated one and says so, or explains why it cannot."""
    if channels == 1 or img.mode != "RGB" or not _whole(data, img.format):
        return None
    try:
        from torchcodec.decoders import decode_image
    except ImportError:
        return None
    try:
        array = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode="RGB").permute(1, 2, 0).numpy()
    except (RuntimeError, ValueError):
        return None
    return Decoded(np.ascontiguousarray(array))  # TorchCodec applies the EXIF orientation itself (tested)


def _whole(data: bytes, fmt: str) -> bool:
    if fmt == "PNG":  # IHDR: bit depth 8, colour type 2 (truecolour); the last chunk is IEND
        return len(data) > 33 and data[24] == 8 and data[25] == 2 and data.endswith(_PNG_END)
    if fmt == "WEBP":
        return len(data) > 12 and int.from_bytes(data[4:8], "little") + 8 == len(data)
    return False


def decoded_size(fmt: str, mode: str, width: int, height: int, min_side: int | None) -> tuple[int, int]:
    """At most the size :func:`decode_checked` will decode an image of this header to (a JPEG much larger than
    ``min_side`` asks for is reduced by a power of two, or a finer libjpeg scale): what a pixel budget counts."""
    if fmt != "JPEG" or mode not in ("RGB", "L") or min_side is None or min(width, height) < 2 * DRAFT_MARGIN * min_side:
        return width, height
    factor = 1
    while factor < 8 and min(width, height) // (2 * factor) >= DRAFT_MARGIN * min_side:
        factor *= 2
    return -(-width // factor), -(-height // factor)


def _exif_orientation(img: Any) -> int | None:
    """The EXIF orientation (2..8) of ``img`` from its header, or ``None`` if upright."""
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - an unreadable EXIF block leaves the photo as stored
        return None
    return orientation if 2 <= orientation <= 8 else None


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """``array`` turned upright for an EXIF orientation, as ``PIL.ImageOps.exif_transpose`` does."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
           7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: a.transpose(1, 0, 2)[::-1]}
    return ops[orientation](array)


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


def read_image(path: str | os.PathLike[str], channels: int = 3, *, min_side: int | None = None) -> Tensor:
    """uint8 ``[C, H, W]`` with ``channels`` 3 (RGB) or 1 (grey); a :class:`~resnet.errors.DataError` naming the
    file if it cannot be decoded or is damaged (eval, explain, calibration: :func:`read_image_checked` returns a
    damaged file's recovered pixels instead). ``min_side``: see :func:`decode_checked`."""
    return _chw(_intact(read_image_checked(path, channels, min_side=min_side), str(path)))


def _intact(decoded: Decoded, label: str) -> np.ndarray:
    if decoded.damaged:
        raise DataError(f"image {label} is damaged ({decoded.damaged}); remove or replace the file")
    return decoded.pixels


def read_image_checked(source: str | os.PathLike[str] | bytes, channels: int = 3, *, min_side: int | None = None,
                       name: str | None = None) -> Decoded:
    """:func:`decode_checked` with the errors of :func:`read_image`: a :class:`~resnet.errors.DataError` naming
    the file (or ``name``, for bytes: ``upload``). The pixels stay ``[H, W, C]``; :func:`as_chw` turns them."""
    label = name or ("upload" if isinstance(source, (bytes, bytearray, memoryview)) else str(source))
    try:
        return decode_checked(source, channels, min_side=min_side)
    except DecodeFailure as err:
        reason = str(err)
        if reason.startswith(MISSING):
            raise DataError(f"image {label} does not exist; check the path") from None
        if reason.startswith(FOLDER):
            raise DataError(f"{label} is a folder, not an image; pass image files or a folder of them") from None
        raise DataError(f"cannot decode image {label}: {reason}; remove or replace the file") from None


def as_chw(decoded: Decoded) -> Tensor:
    """The pixels of ``decoded`` as uint8 ``[C, H, W]``."""
    return _chw(decoded.pixels)


def _chw(array: np.ndarray) -> Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def read_image_bytes(data: bytes, channels: int = 3, name: str = "upload", *, min_side: int | None = None) -> Tensor:
    """:func:`read_image` for an image held in memory (an HTTP upload): the same pixels, modes and
    errors, with ``name`` standing for the path in them."""
    return _chw(_intact(read_image_checked(data, channels, min_side=min_side, name=name), name))


def decode_image_tensor(path: str | os.PathLike[str], channels: int = 3, *, min_side: int | None = None) -> Tensor:
    """uint8 ``[C, H, W]`` for training folders: :func:`decode_file`'s pixels (the one decoder of every path:
    libjpeg-turbo for RGB and grey JPEGs, Pillow for the rest). Raises :class:`DecodeFailure`."""
    return _chw(decode_file(path, channels, min_side=min_side))


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
