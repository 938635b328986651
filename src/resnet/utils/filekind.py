"""What a file is, read off its first bytes (never its name alone, never by running it).

``resnet predict photo.jpg RUN`` (arguments swapped) or an ONNX / TorchScript export passed where weights are
expected used to be called a corrupt checkpoint. :func:`file_kind` tells the kinds apart by their magic bytes so
that a message can name what the file is: safetensors, a PyTorch zip (``torch.save``), TorchScript (a zip with
``code/`` and ``constants.pkl``), a pickle (the legacy ``torch.save`` format), ONNX (a protobuf ``ModelProto``),
an image (JPEG, PNG, GIF, BMP, WebP, TIFF), another zip, or unknown.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

SAFETENSORS, PYTORCH_ZIP, TORCHSCRIPT, PICKLE, ONNX, IMAGE, ZIP, UNKNOWN = (
    "safetensors", "pytorch-zip", "torchscript", "pickle", "onnx", "image", "zip", "unknown")
#: What each kind is called in a sentence ("... is an ONNX model").
DESCRIPTIONS = {
    SAFETENSORS: "a safetensors file", PYTORCH_ZIP: "a PyTorch file", TORCHSCRIPT: "a TorchScript export",
    PICKLE: "a pickle file", ONNX: "an ONNX model", IMAGE: "an image", ZIP: "a zip archive", UNKNOWN: "a file of unknown kind",
}
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_HEAD = 64


def file_kind(path: str | os.PathLike[str]) -> str:
    """One of the kinds above for the file at ``path`` (reads at most its first bytes and, for a zip, its names)."""
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(_HEAD)
    if _is_safetensors(head):
        return SAFETENSORS
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(p)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return PICKLE
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return IMAGE
    if _is_onnx(head):
        return ONNX
    return UNKNOWN


def _is_safetensors(head: bytes) -> bool:
    """A little-endian u64 header length, then the JSON header's ``{``."""
    return len(head) > 8 and 0 < int.from_bytes(head[:8], "little") < 100_000_000 and head[8:9] == b"{"


def _zip_kind(p: Path) -> str:
    try:
        with zipfile.ZipFile(p) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return PYTORCH_ZIP  # a zip cut off before its index: a torch.save file, for the reader to call truncated
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return TORCHSCRIPT
    if any(n.endswith("data.pkl") for n in names):
        return PYTORCH_ZIP
    return ZIP


def _is_onnx(head: bytes) -> bool:
    """A protobuf ``ModelProto``: field 1 (``ir_version``, a small varint) first, then a producer name (field 2),
    a graph (7) or an opset import (8) — the order every ONNX writer uses."""
    return len(head) >= 3 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in (0x12, 0x1A, 0x22, 0x2A, 0x3A, 0x42)
