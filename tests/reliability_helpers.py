"""Hostile files for the reliability tests: code-running pickles, broken checkpoints and odd images."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch


class _Payload:
    """Unpickling this (with ``pickle.load`` / ``torch.load(weights_only=False)``) calls ``fn(*args)``."""

    def __init__(self, fn: Callable[..., object], *args: object) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.fn, self.args


def payloads(marker: Path) -> dict[str, _Payload]:
    """Three ways a pickle can run code, each of which would create ``marker``."""
    return {
        "open": _Payload(open, str(marker), "w"),
        "exec": _Payload(exec, f"open({str(marker)!r}, 'w').close()"),
        "system": _Payload(os.system, f"touch '{marker}'"),
    }


def write_evil_checkpoints(folder: Path, marker: Path) -> list[Path]:
    """Crafted checkpoints in every container the loaders accept, each running code when unpickled.

    The names look like real checkpoints (``resnet20-*.pth``) so that nothing is refused by name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    good = {"conv1.weight": torch.zeros(16, 3, 3, 3)}
    files: list[Path] = []
    for name, payload in payloads(marker).items():
        # torch.save's zip container, the payload beside real tensors and inside a wrapper
        path = folder / f"resnet20-{name}-zip.pth"
        torch.save({**good, "evil": payload}, path)
        files.append(path)
        path = folder / f"resnet20-{name}-wrapped.pt"
        torch.save({"state_dict": good, "best_prec1": 91.0, "extra": payload}, path)
        files.append(path)
        # the legacy (pre-1.6) torch format and a bare pickle
        path = folder / f"resnet20-{name}-legacy.th"
        torch.save({**good, "evil": payload}, path, _use_new_zipfile_serialization=False)
        files.append(path)
        path = folder / f"resnet20-{name}-raw.pth"
        path.write_bytes(pickle.dumps(payload, protocol=2))
        files.append(path)
    return files


def evil_state_file(path: Path, marker: Path) -> None:
    """A ``last.state.pt`` that looks like ours but would run code."""
    torch.save({"format": "resnet-train-state", "version": 1, "step": 3, "evil": payloads(marker)["open"]}, path)


def png_bytes(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0, idat: bytes | None = None) -> bytes:
    """A PNG built by hand: any header (e.g. claiming gigapixels) with any (e.g. tiny) pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    if idat is None:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
        row = b"\0" + bytes(width * channels * bit_depth // 8)
        idat = zlib.compress(row * height)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def decompression_bomb() -> bytes:
    """A 100 kB PNG header claiming 100000 x 100000 pixels (10 gigapixels)."""
    return png_bytes(100_000, 100_000, idat=zlib.compress(b"\0" * 100_000))


def odd_images(folder: Path, size: int = 16) -> dict[str, str]:
    """Write one image of every odd kind into ``folder``; returns ``{file name: "ok" | "bad"}``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    kinds: dict[str, str] = {}

    def save(name: str, image: Image.Image, **kw: object) -> None:
        image.save(folder / name, **kw)
        kinds[name] = "ok"

    save("rgb.png", Image.fromarray(rgb))
    save("grey.png", Image.fromarray(rgb[:, :, 0]))
    save("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    save("deep16.png", Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)))  # mode I;16
    save("palette.png", Image.fromarray(rgb).convert("P"))
    save("alpha.png", Image.fromarray(rgb).convert("RGBA"))
    save("photo.jpg", Image.fromarray(rgb), quality=90)
    good = (folder / "rgb.png").read_bytes()
    bad = {
        "zero.png": b"",
        "truncated.png": good[: len(good) // 2],
        "corrupt.png": good[:16] + bytes(len(good) - 16),
        "notimage.png": b"this is a text file with an image name\n" * 3,
        "huge.png": decompression_bomb(),
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
        kinds[name] = "bad"
    (folder / "readme.txt").write_text("not an image, by extension\n")
    kinds["readme.txt"] = "ignored"
    return kinds


def state_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
