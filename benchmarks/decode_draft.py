"""Reduced-scale JPEG decoding (data/decode.py: libjpeg DCT scaling, as Pillow's draft) against a full decode plus
resize: top-1 agreement and the network view's pixel difference on real photos, for a network whose input is much
smaller than the photos (the CIFAR ResNet-20 of akamaster, 32x32: the only trained network loadable offline here).

    PYTHONPATH=src python benchmarks/decode_draft.py --weights ../shared/data/reference-weights/akamaster-cifar10/resnet20-12fca82f.th \\
        ../shared/data/imagenet-samples/images ../shared/data/caltech101-10/val
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--margin", type=int, nargs="+", default=None, help="DRAFT_MARGIN values to compare (default: the library's)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    import resnet.data.decode as decode

    for margin in args.margin or [decode.DRAFT_MARGIN]:
        decode.DRAFT_MARGIN = margin
        print(f"DRAFT_MARGIN {margin}")
        run(args)


def run(args: argparse.Namespace) -> None:
    from resnet.data.decode import as_chw, decode_checked
    from resnet.data.scan import find_images
    from resnet.evaluate import resolve_source
    from resnet.evaluate.preprocess import network_input
    from resnet.explain import network_view

    torch.set_num_threads(1)
    net = resolve_source(args.weights, model_name=args.model)
    pre = net.preprocess
    rows = []
    for folder in args.folders:
        paths = [p for p in find_images([folder]) if p.suffix.lower() in (".jpg", ".jpeg")]
        agree, diffs, reduced, t_full, t_draft = 0, [], 0, 0.0, 0.0
        for path in paths:
            data = path.read_bytes()
            start = time.perf_counter()
            full = decode_checked(data, pre.channels)
            t_full += time.perf_counter() - start
            start = time.perf_counter()
            draft = decode_checked(data, pre.channels, min_side=pre.resize_size)
            t_draft += time.perf_counter() - start
            reduced += draft.pixels.shape[:2] != full.pixels.shape[:2]
            views = torch.stack([network_view(as_chw(full), pre), network_view(as_chw(draft), pre)])
            with torch.inference_mode():
                top1 = net.model(network_input(views, pre)).argmax(1)
            agree += int(top1[0] == top1[1])
            diffs.append((views[0].float() - views[1].float()).abs().mean().item())
        rows.append({"margin": __import__("resnet.data.decode").data.decode.DRAFT_MARGIN, "folder": folder, "jpegs": len(paths), "decoded_reduced": reduced, "top1_agreement": agree / max(len(paths), 1),
                     "mean_abs_view_diff_0_255": sum(diffs) / max(len(diffs), 1),
                     "decode_s_full": round(t_full, 3), "decode_s_reduced": round(t_draft, 3)})
        print(json.dumps(rows[-1]))
    if args.json:
        out = Path(args.json)
        old = json.loads(out.read_text()) if out.exists() else []
        out.write_text(json.dumps(old + rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
