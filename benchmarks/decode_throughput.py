"""Decode throughput per core, per format and decoder, on the Caltech photo folder: images/s on one thread
(``torch.set_num_threads(1)``) to RGB uint8, interleaved rounds, the best round of each kept.

JPEG: the Caltech photos as they are; PNG, WebP and GIF: the same photos re-encoded in memory. Decoders:
Pillow (``Image.open(...).convert("RGB")``), simplejpeg (JPEG only: what ``resnet.data.decode`` uses for JPEGs)
and TorchCodec's ``decode_image`` when importable.

    PYTHONPATH=src python benchmarks/decode_throughput.py ../shared/data/caltech101-10/val --limit 200
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def pillow(data: bytes) -> object:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def simplejpeg_rgb(data: bytes) -> object:
    import simplejpeg

    return simplejpeg.decode_jpeg(data, "RGB")


def torchcodec_rgb(data: bytes) -> object:
    from torchcodec.decoders import decode_image

    return decode_image(torch.frombuffer(data, dtype=torch.uint8), mode="RGB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    paths = sorted(p for p in Path(args.folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[: args.limit]
    files = {"JPEG": [p.read_bytes() for p in paths]}
    for fmt in ("PNG", "WEBP", "GIF"):
        files[fmt] = []
        for data in files["JPEG"]:
            buf = io.BytesIO()
            Image.open(io.BytesIO(data)).convert("RGB").save(buf, fmt)
            files[fmt].append(buf.getvalue())
    decoders = {"pillow": pillow, "simplejpeg": simplejpeg_rgb}
    try:
        torchcodec_rgb(files["JPEG"][0])
        decoders["torchcodec"] = torchcodec_rgb
    except Exception as err:  # noqa: BLE001 - report and go on without it
        print(f"torchcodec unavailable: {type(err).__name__}: {err}")
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for fmt, blobs in files.items():
            for name, fn in decoders.items():
                if name == "simplejpeg" and fmt != "JPEG":
                    continue
                try:
                    start = time.perf_counter()
                    for data in blobs:
                        fn(data)
                    rate = len(blobs) / (time.perf_counter() - start)
                except Exception as err:  # noqa: BLE001 - a decoder that cannot read a format says so
                    print(f"{name} cannot decode {fmt}: {type(err).__name__}: {str(err)[:100]}")
                    rate = 0.0
                best[(fmt, name)] = max(best.get((fmt, name), 0.0), rate)
    rows = [{"format": f, "decoder": d, "images_per_s_one_core": round(r, 1)} for (f, d), r in best.items()]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps({"images": len(paths), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
