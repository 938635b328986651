"""Test accuracy of saved CIFAR weights under other ways of weighting the test views: what airbench94's
(Jordan 2024) weighting and reflected borders would change against the trainer's six equal, zero-filled views.

    chrt -f 1 .venv/bin/python benchmarks/test_view_weighting.py RUN/last.safetensors [...] \
        [--model resnet9_lite] [--data ../shared/data/cifar10]

Each checkpoint's logits are computed once per view (bf16 autocast, channels_last, two threads): the image and its
mirror, each also moved by (+1, +1) and (-1, -1) pixels with the uncovered border zero-filled (the trainer's
``test_shift=1``, from :func:`resnet.inference.views.eval_views`) or reflected. Each weighting is scored by averaging
softmax probabilities (the trainer's rule) and logits (airbench94's). Results: docs/results/train/cpu-zen4-cifar94/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from resnet import create_model  # noqa: E402
from resnet.data.load import load_arrays  # noqa: E402
from resnet.inference.views import eval_views  # noqa: E402

ZERO = ("c", "c+", "c-", "f", "f+", "f-")  # eval_views' order: each of (image, mirror), then its two moves
WEIGHTINGS = {
    "centre only": {"c": 1},
    "image + mirror": {"c": 1, "f": 1},
    "6 views zero-filled, equal (the trainer's)": {k: 1 for k in ZERO},
    "6 views reflected, equal": {"c": 1, "f": 1, "c+r": 1, "c-r": 1, "f+r": 1, "f-r": 1},
    "6 views zero-filled, 1/2 : 1/4 : 1/4": {"c": 2, "f": 2, "c+": 1, "c-": 1, "f+": 1, "f-": 1},
    "6 views reflected, 1/2 : 1/4 : 1/4 (airbench94's)": {"c": 2, "f": 2, "c+r": 1, "c-r": 1, "f+r": 1, "f-r": 1},
}


def view_logits(net: torch.nn.Module, x: torch.Tensor, black: torch.Tensor) -> dict[str, torch.Tensor]:
    views = dict(zip(ZERO, eval_views(x, flip=True, shift=1, fill=black)))
    for name, image in (("c", x), ("f", x.flip(-1))):
        padded = F.pad(image, (1, 1, 1, 1), mode="reflect")
        views[name + "+r"], views[name + "-r"] = padded[..., :32, :32], padded[..., 2:, 2:]
    return {k: net(v.contiguous(memory_format=torch.channels_last)).float() for k, v in views.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights", nargs="+", help="safetensors files the trainer wrote (last.safetensors)")
    p.add_argument("--model", default="resnet9_lite")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"))
    args = p.parse_args()
    torch.set_num_threads(2)
    test = load_arrays("cifar10", "test", args.data)
    mean, std = torch.tensor(test.mean).view(1, 3, 1, 1), torch.tensor(test.std).view(1, 3, 1, 1)
    black = (-mean / std).view(3, 1, 1)
    print("| weights | weighting | probabilities averaged | logits averaged |\n|---|---|---:|---:|")
    for path in args.weights:
        net = create_model(args.model)
        net.load_state_dict(load_file(path))
        net.eval().to(memory_format=torch.channels_last)
        chunks: list[dict[str, torch.Tensor]] = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for i in range(0, len(test), 1000):
                chunks.append(view_logits(net, (test.images[i:i + 1000].float() / 255 - mean) / std, black))
        logits = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
        for name, weights in WEIGHTINGS.items():
            scores = [sum(w * (logits[k].softmax(1) if probs else logits[k]) for k, w in weights.items())
                      for probs in (True, False)]
            acc = [(s.argmax(1) == test.labels).float().mean().item() * 100 for s in scores]
            print(f"| {Path(path).parent.name} | {name} | {acc[0]:.2f} % | {acc[1]:.2f} % |", flush=True)


if __name__ == "__main__":
    main()
