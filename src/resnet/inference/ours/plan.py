"""A post-activation ResNet as a flat list of fusable steps.

After BN folding, every ResNet (ours or torchvision's, any shortcut option, plain twins, dilation)
is a stem convolution (+ReLU, + max-pool), a chain of blocks — each a few conv(+ReLU) steps whose
last convolution is followed by "add the shortcut, then ReLU" — and a pooled linear head. The
fast runners (:mod:`.fused` for float, :mod:`.quantize` for int8) execute this plan with fused
oneDNN kernels; :func:`run_plan` executes it with plain PyTorch ops as their reference and to
observe activation ranges for calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import UsageError
from ...models.blocks import ZeroPadShortcut
from ..fold import _post_activation_blocks, count_batchnorms, fold_bn

Shortcut = Union[None, nn.Conv2d, ZeroPadShortcut]  # None: identity


@dataclass
class BlockPlan:
    convs: list[nn.Conv2d]  # main path; a ReLU follows each but the last
    residual: bool  # False for plain nets: the last conv is followed by ReLU only
    shortcut: Shortcut = None


@dataclass
class NetPlan:
    stem: nn.Conv2d  # followed by ReLU
    maxpool: nn.MaxPool2d | None
    blocks: list[BlockPlan]
    fc: nn.Linear | None  # None: the network returns pooled features

    def convs(self) -> list[nn.Conv2d]:
        out = [self.stem]
        for b in self.blocks:
            out += b.convs
            if isinstance(b.shortcut, nn.Conv2d):
                out.append(b.shortcut)
        return out


def _unsupported(why: str) -> UsageError:
    return UsageError(f"{why}; the fused runners handle post-activation ResNets only (use mode 'eager' or export to ONNX)")


def _shortcut(block: nn.Module) -> Shortcut:
    ds = getattr(block, "downsample", None)
    if ds is None:
        return None
    if isinstance(ds, ZeroPadShortcut):
        return ds
    layers = [m for m in (ds if isinstance(ds, nn.Sequential) else [ds]) if not isinstance(m, nn.Identity)]
    if len(layers) == 1 and isinstance(layers[0], nn.Conv2d):
        return layers[0]
    raise _unsupported(f"shortcut {type(ds).__name__} ({', '.join(type(m).__name__ for m in layers)}) is not a convolution")


def build_plan(model: nn.Module) -> NetPlan:
    """Describe ``model`` as fusable steps; BNs are folded on a copy first (``model`` is untouched)."""
    if getattr(model, "features_only", False):
        raise _unsupported("features_only networks return several maps")
    spec = getattr(model, "spec", None)
    if spec is not None and spec.preact:
        raise _unsupported("pre-activation blocks normalise their input, so their BNs cannot be folded")
    if not all(isinstance(getattr(model, n, None), nn.Module) for n in ("conv1", "fc")):
        raise _unsupported(f"{type(model).__name__} does not look like a ResNet (no conv1 / fc)")
    folded = fold_bn(model)
    if count_batchnorms(folded):
        raise _unsupported(f"{count_batchnorms(folded)} batch norm(s) could not be folded")
    stem = folded.conv1
    if not isinstance(stem, nn.Conv2d):
        raise _unsupported("the stem is not a single convolution")
    maxpool = getattr(folded, "maxpool", None)
    if maxpool is not None and not isinstance(maxpool, nn.MaxPool2d):
        maxpool = None
    stage_names = getattr(folded, "stage_names", None) or [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(folded, n)]
    block_kinds = _post_activation_blocks()
    blocks: list[BlockPlan] = []
    for name in stage_names:
        for block in getattr(folded, name):
            if not isinstance(block, block_kinds):
                raise _unsupported(f"block {type(block).__name__} in {name}")
            convs = [getattr(block, f"conv{i}") for i in (1, 2, 3) if isinstance(getattr(block, f"conv{i}", None), nn.Conv2d)]
            residual = bool(getattr(block, "residual", True))
            blocks.append(BlockPlan(convs, residual, _shortcut(block) if residual else None))
    fc = folded.fc if isinstance(folded.fc, nn.Linear) else None
    return NetPlan(stem, maxpool, blocks, fc)


def conv_args(conv: nn.Conv2d) -> tuple[list[int], list[int], list[int], int]:
    """(padding, stride, dilation, groups) as lists, the order oneDNN's fused kernels take them."""
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise _unsupported(f"convolution padding {conv.padding!r}/{conv.padding_mode!r}")
    return list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups


Observer = Callable[[str, Tensor], None]


def run_plan(plan: NetPlan, x: Tensor, observe: Observer | None = None) -> Tensor:
    """Run ``plan`` with plain PyTorch ops; ``observe(point, tensor)`` sees every value that the
    int8 runner stores quantized (point names are those :class:`~.quantize.QuantizedResNet` uses)."""
    seen = observe or (lambda name, t: None)
    seen("input", x)
    x = F.relu(plan.stem(x))
    seen("stem", x)
    if plan.maxpool is not None:
        x = plan.maxpool(x)
    for i, block in enumerate(plan.blocks):
        h = x
        for j, conv in enumerate(block.convs[:-1]):
            h = F.relu(conv(h))
            seen(f"block{i}.conv{j}", h)
        h = block.convs[-1](h)
        if block.residual:
            if isinstance(block.shortcut, nn.Conv2d):
                sc = block.shortcut(x)
                seen(f"block{i}.shortcut", sc)
            else:
                sc = x if block.shortcut is None else block.shortcut(x)
            h = h + sc
        x = F.relu(h)
        seen(f"block{i}.out", x)
    x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
    return plan.fc(x) if plan.fc is not None else x


def macs_per_image(plan: NetPlan, channels: int, height: int, width: int) -> int:
    """Multiply-adds of the convolutions and the head for one ``channels x height x width`` image."""
    shapes = conv_input_shapes(plan, torch.zeros(1, channels, height, width))
    total = 0
    for conv in plan.convs():
        _, cin, h, w = shapes.get(id(conv), [1, conv.in_channels, 0, 0])
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
        ho = (h + 2 * int(ph) - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * int(pw) - dw * (kw - 1) - 1) // sw + 1
        total += conv.out_channels * (cin // conv.groups) * kh * kw * max(ho, 0) * max(wo, 0)
    if plan.fc is not None:
        total += plan.fc.in_features * plan.fc.out_features
    return total


def conv_input_shapes(plan: NetPlan, example: Tensor) -> dict[int, list[int]]:
    """Input shape of every convolution of ``plan`` for ``example`` (keyed by ``id(conv)``).

    oneDNN picks the blocked weight layout for a given input shape, so prepacking with the shape
    the runner will see gives its fastest kernels.
    """
    shapes: dict[int, list[int]] = {}
    hooks = [
        conv.register_forward_pre_hook(lambda mod, args: shapes.__setitem__(id(mod), list(args[0].shape)))
        for conv in plan.convs()
    ]
    try:
        with torch.inference_mode():
            run_plan(plan, example.float())
    finally:
        for h in hooks:
            h.remove()
    return shapes
