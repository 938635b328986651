"""Layer responses (paper Fig. 7): the standard deviation of each 3x3 layer's output after BN.

The paper plots, per network, the std of "the outputs of each 3x3 layer, after BN and before other
nonlinearity (ReLU/addition)". In a post-activation block those are exactly the outputs of the
BatchNorm that follows each 3x3 convolution (``bn1`` before its ReLU, ``bn2`` before the addition),
so forward hooks on those BN modules see the responses unchanged (the ReLU after ``bn1`` is in-place
but runs after the hook has read the tensor).

Two figures are kept per layer, both over every element of the test set (images x positions):
``std`` over all channels pooled together (what is plotted) and ``channel_std``, the mean over
channels of the per-channel std (pooled std also counts the spread of the channel means, which BN's
``beta`` sets). Per-batch channel moments are merged in float64, so the result does not depend on how
the data are split into batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from ..errors import UsageError


@dataclass
class LayerResponse:
    name: str  # module path of the BN, e.g. "layer1.0.bn2"
    std: float  # over all elements of all channels
    channel_std: float  # mean over channels of the per-channel std
    mean: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "std": self.std, "channel_std": self.channel_std, "mean": self.mean}


@dataclass
class ResponseProfile:
    """Per-layer response statistics of one network, layers in network order (input to output)."""

    label: str
    model: str
    residual: bool
    images: int
    layers: list[LayerResponse] = field(default_factory=list)
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stds(self) -> list[float]:
        return [layer.std for layer in self.layers]

    @property
    def sorted_stds(self) -> list[float]:
        return sorted(self.stds, reverse=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "model": self.model,
            "residual": self.residual,
            "images": self.images,
            "source": self.source,
            "layers": [layer.as_dict() for layer in self.layers],
            "sorted_std": self.sorted_stds,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResponseProfile":
        return cls(
            label=str(d["label"]),
            model=str(d["model"]),
            residual=bool(d["residual"]),
            images=int(d["images"]),
            layers=[LayerResponse(str(x["name"]), float(x["std"]), float(x["channel_std"]), float(x["mean"])) for x in d["layers"]],
            source=str(d.get("source", "")),
            extra=dict(d.get("extra", {})),
        )


def _is_3x3(conv: nn.Module) -> bool:
    return isinstance(conv, nn.Conv2d) and tuple(conv.kernel_size) == (3, 3)


def response_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, BN module) of every 3x3 layer of ``model`` in network order.

    Works for post-activation networks built from ``conv{i}`` → ``bn{i}`` pairs (stem and blocks);
    pre-activation blocks normalise *before* their convolutions, so Fig. 7's "after BN, before the
    nonlinearity" has no counterpart there and they are refused.
    """
    if getattr(getattr(model, "spec", None), "preact", False):
        raise UsageError("layer responses (Fig. 7) are defined for post-activation networks; this one uses pre-activation blocks")
    found: list[tuple[str, nn.Module]] = []

    def pairs(prefix: str, owner: nn.Module) -> None:
        for i in (1, 2, 3):
            conv, bn = getattr(owner, f"conv{i}", None), getattr(owner, f"bn{i}", None)
            if _is_3x3(conv) and isinstance(bn, nn.BatchNorm2d):
                found.append((f"{prefix}bn{i}", bn))

    pairs("", model)  # the stem (CIFAR nets: a 3x3 conv; ImageNet nets: 7x7, skipped)
    for stage_name in getattr(model, "stage_names", [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(model, n)]):
        for j, block in enumerate(getattr(model, stage_name)):
            pairs(f"{stage_name}.{j}.", block)
    if not found:
        raise UsageError(f"{type(model).__name__} has no 3x3 convolution followed by BatchNorm; nothing to measure")
    return found


class _ChannelMoments:
    """Per-channel count, mean and sum of squared deviations over many batches.

    Each batch's moments come from one ``torch.var_mean`` pass over the layer output as it is (no
    float64 copy of a 16 MB activation per layer and batch, which made a full test set take minutes);
    batches are merged in float64 with Chan et al.'s pairwise formula, so the result does not depend
    on how the data are split into batches.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def add(self, x: Tensor) -> None:
        x = x.detach()
        var_b, mean_b = torch.var_mean(x.float(), dim=(0, 2, 3), correction=0)
        n_b = x.shape[0] * x.shape[2] * x.shape[3]
        mean_b, m2_b = mean_b.double(), var_b.double() * n_b
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta * delta * (self.count * n_b / n)
        self.count = n

    def result(self, name: str) -> LayerResponse:
        if self.mean is None or self.m2 is None or self.count == 0:
            raise UsageError(f"layer {name} saw no data")
        ch_var = (self.m2 / self.count).clamp_min(0)
        grand_mean = self.mean.mean()
        # Pooled variance = mean within-channel variance + variance of the channel means (equal counts).
        pooled_var = ch_var.mean() + ((self.mean - grand_mean) ** 2).mean()
        return LayerResponse(name, float(pooled_var.sqrt()), float(ch_var.sqrt().mean()), float(grand_mean))


@torch.no_grad()
def measure_responses(model: nn.Module, batches: Iterable[Tensor], *, device: str | torch.device = "cpu") -> list[LayerResponse]:
    """Std of every 3x3 layer's response (after BN, before ReLU/addition) over ``batches``.

    ``batches`` yields normalised float inputs. The model runs in eval mode, so BN uses its running
    statistics, as at test time.
    """
    layers = response_layers(model)
    moments = [_ChannelMoments() for _ in layers]
    handles = [bn.register_forward_hook(lambda _m, _i, out, acc=acc: acc.add(out)) for (_, bn), acc in zip(layers, moments)]
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x.to(device, torch.float32))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [acc.result(name) for (name, _), acc in zip(layers, moments)]


def is_residual(model: nn.Module) -> bool:
    spec = getattr(model, "spec", None)
    return spec is None or spec.shortcut != "none"


# -- from SOURCEs (checkpoints, run folders, model names) to profiles -----------------------------
def label_for(model: nn.Module, fallback: str) -> str:
    spec = getattr(model, "spec", None)
    if spec is None or spec.stem != "cifar" or spec.block != "basic" or spec.preact:
        return fallback
    return f"{'ResNet' if spec.shortcut != 'none' else 'plain'}-{spec.depth}"


def profile_member(
    member: Any, data: Any, *, label: str | None = None, batch_size: int = 250, device: str = "cpu"
) -> ResponseProfile:
    """Measure one :class:`resnet.inference.Network` on :class:`resnet.evaluate.data.EvalData`.

    Each network sees the test images under its own convention (``member.preprocess``: the
    akamaster nets ImageNet mean/std, ours the statistics stored in their checkpoint).
    """
    from ..evaluate.preprocess import match_channels, network_input
    from ..inference.protocols import center_view

    pre = member.preprocess

    def batches() -> Iterable[Tensor]:
        for images, _ in data.batches(batch_size):
            yield network_input(match_channels(center_view(images, pre), pre.channels, "test image"), pre)

    model = member.model.to(device)
    layers = measure_responses(model, batches(), device=device)
    return ResponseProfile(
        label=label or label_for(model, member.name),
        model=member.model_name,
        residual=is_residual(model),
        images=len(data),
        layers=layers,
        source=member.source,
        extra={"kind": member.kind, "normalisation": {"mean": list(pre.mean), "std": list(pre.std)}},
    )


def resolve_response_sources(sources: list[str], weights: list[str] | None = None) -> list[tuple[str, Any]]:
    """SOURCEs → (label, member). A bare model name takes the next of ``weights`` (in order)."""
    from pathlib import Path

    from ..evaluate.sources import resolve_source
    from ..inference.load import is_model_name

    pending = list(weights or [])
    members = []
    for source in sources:
        if not Path(source).exists() and is_model_name(source):
            if not pending:
                raise UsageError(f"{source} is a model name: give its weights with `weights` FILE (one per model name, in order)")
            members.append(resolve_source(pending.pop(0), model_name=source))
        else:
            members.append(resolve_source(source))
    if pending:
        raise UsageError(f"{len(pending)} `weights` file(s) left over: each belongs to one model-name SOURCE, in order")
    labels = [label_for(m.model, m.name) for m in members]
    # Two nets of one depth (e.g. two seeds) are told apart by their file or folder name.
    return [(f"{label} ({m.name})" if labels.count(label) > 1 else label, m) for m, label in zip(members, labels)]
