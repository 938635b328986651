"""Class probabilities for image files, batched; an unreadable file is reported and skipped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

from ..data.decode import read_image
from ..errors import DataError, UsageError
from ..inference.network import Network
from ..inference.protocols import Center, EvalProtocol, stack_or_list


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, int, float]]  # (class name, class index, probability), most likely first

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "top": [{"class": c, "index": i, "prob": round(p, 6)} for c, i, p in self.top]}


@dataclass
class Failure:
    path: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "error": self.error}


def predict_files(
    member: Network,
    paths: Sequence[Path],
    *,
    top: int = 5,
    batch_size: int = 64,
    protocol: EvalProtocol | None = None,
) -> Iterator[Prediction | Failure]:
    """One :class:`Prediction` or :class:`Failure` per path, in order, decoding ``batch_size`` files at a time."""
    if top < 1:
        raise UsageError(f"`top` must be at least 1, got {top}")
    if batch_size < 1:
        raise UsageError(f"`batch_size` must be positive, got {batch_size}")
    protocol = protocol or Center()
    names = member.class_names()
    k = min(top, len(names))
    net = member.scorer()
    channels = member.preprocess.channels
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        decoded: list[tuple[int, torch.Tensor]] = []
        outcome: list[Prediction | Failure | None] = [None] * len(chunk)
        for i, path in enumerate(chunk):
            try:
                decoded.append((i, read_image(path, channels)))
            except DataError as err:
                outcome[i] = Failure(str(path), str(err))
        if decoded:
            probs = protocol.probabilities(net, stack_or_list([img for _, img in decoded]), member.preprocess)
            values, indices = probs.topk(k, dim=1)
            for (i, _), v, idx in zip(decoded, values.tolist(), indices.tolist()):
                outcome[i] = Prediction(str(chunk[i]), [(names[c], c, p) for c, p in zip(idx, v)])
        for item in outcome:
            assert item is not None
            yield item
