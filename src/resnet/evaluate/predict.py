"""Class probabilities for image files, batched; an unreadable file is reported and skipped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from ..data.decode import as_chw, read_image_checked
from ..errors import DataError, UsageError
from ..inference.network import Network
from ..inference.protocols import Center, EvalProtocol, stack_or_list

if TYPE_CHECKING:
    from ..data.preprocess import Preprocess


@dataclass
class Prediction:
    path: str
    top: list[tuple[str, int, float]]  # (class name, class index, probability), most likely first
    damaged: str | None = None  # what the decoder said, if the file decoded only with recovery

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "top": [{"class": c, "index": i, "prob": round(p, 6)} for c, i, p in self.top]}
        if self.damaged:
            out["damaged"] = self.damaged
        return out


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
    strict: bool = False,
) -> Iterator[Prediction | Failure]:
    """One :class:`Prediction` or :class:`Failure` per path, in order, decoding ``batch_size`` files at a time.
    A damaged file (decoded only with recovery) is predicted and marked, or a :class:`Failure` when ``strict``;
    large JPEGs are decoded at the reduced scale the protocol's resize allows."""
    if top < 1:
        raise UsageError(f"`top` must be at least 1, got {top}")
    if batch_size < 1:
        raise UsageError(f"`batch_size` must be positive, got {batch_size}")
    protocol = protocol or Center()
    names = member.class_names()
    k = min(top, len(names))
    net = member.scorer()
    channels = member.preprocess.channels
    side = needed_side(protocol, member.preprocess)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        decoded: list[tuple[int, torch.Tensor]] = []
        outcome: list[Prediction | Failure | None] = [None] * len(chunk)
        damaged: dict[int, str] = {}
        for i, path in enumerate(chunk):
            try:
                image = read_image_checked(path, channels, min_side=side)
            except DataError as err:
                outcome[i] = Failure(str(path), str(err))
                continue
            if image.damaged and strict:
                outcome[i] = Failure(str(path), f"image {path} is damaged ({image.damaged}); refused (`strict`): replace the file")
                continue
            if image.damaged:
                damaged[i] = image.damaged
            decoded.append((i, as_chw(image)))
        if decoded:
            probs = protocol.probabilities(net, stack_or_list([img for _, img in decoded]), member.preprocess)
            values, indices = probs.topk(k, dim=1)
            for (i, _), v, idx in zip(decoded, values.tolist(), indices.tolist()):
                outcome[i] = Prediction(str(chunk[i]), [(names[c], c, p) for c, p in zip(idx, v)], damaged.get(i))
        for item in outcome:
            assert item is not None
            yield item


def needed_side(protocol: EvalProtocol, pre: "Preprocess") -> int:
    """The largest shorter side ``protocol`` resizes images to: what a reduced-scale decode must keep."""
    scales = getattr(protocol, "scales_for", None)
    return max([pre.resize_size, *(scales(pre) if scales else ())])
