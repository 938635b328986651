"""Batch-norm folding: an inference-time BN after a convolution is an affine map per output
channel, so it can be merged into the convolution's weight and bias.

Only pairs where the BN directly normalises the convolution's output are folded (the stem and
the ``conv``/``bn`` pairs of post-activation blocks, plus ``Sequential(conv, bn)`` projection
shortcuts). Pre-activation blocks normalise their *input* and are left as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models.blocks import BasicBlock, Bottleneck
from ..models.network import ResNet


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new convolution computing ``bn(conv(x))`` with ``bn`` in evaluation mode."""
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"expected Conv2d and BatchNorm2d, got {type(conv).__name__} and {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm2d without running statistics (track_running_stats=False)")
    # float64 so that folding adds no rounding beyond the final cast to the weight dtype.
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(b)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(b)
    scale = gamma / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    folded = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        conv.groups, bias=True, padding_mode=conv.padding_mode,
    )
    dtype = conv.weight.dtype
    with torch.no_grad():
        folded.weight.copy_((w * scale.view(-1, 1, 1, 1)).to(dtype))
        folded.bias.copy_(((b - bn.running_mean.detach().double()) * scale + beta).to(dtype))
    return folded.to(conv.weight.device)


def _post_activation_blocks() -> tuple[type[nn.Module], ...]:
    kinds: list[type[nn.Module]] = [BasicBlock, Bottleneck]
    try:  # torchvision's blocks share our layer names, so its models fold the same way
        from torchvision.models.resnet import BasicBlock as TvBasic
        from torchvision.models.resnet import Bottleneck as TvBottleneck

        kinds += [TvBasic, TvBottleneck]
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    return tuple(kinds)


def _fold_pair(owner: nn.Module, conv_name: str, bn_name: str) -> bool:
    conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
    if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
        setattr(owner, conv_name, fold_conv_bn(conv, bn))
        setattr(owner, bn_name, nn.Identity())
        return True
    return False


def _fold_sequential(seq: nn.Sequential) -> int:
    names = list(seq._modules)
    folded = 0
    for a, b in zip(names, names[1:]):
        if isinstance(seq._modules[a], nn.Conv2d) and isinstance(seq._modules[b], nn.BatchNorm2d):
            seq._modules[a] = fold_conv_bn(seq._modules[a], seq._modules[b])  # type: ignore[arg-type]
            seq._modules[b] = nn.Identity()
            folded += 1
    return folded


def fold_bn(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Return ``model`` (a copy unless ``inplace``) in eval mode with every foldable BN merged.

    The result computes the same function as ``model.eval()`` up to float rounding (about 1e-6
    relative); folded BNs become ``nn.Identity`` so layer names and the forward code are unchanged.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    blocks = _post_activation_blocks()
    is_net = isinstance(model, ResNet) or type(model).__name__ == "ResNet"
    if is_net:
        _fold_pair(model, "conv1", "bn1")
    for module in model.modules():
        if isinstance(module, blocks):
            for i in (1, 2, 3):
                _fold_pair(module, f"conv{i}", f"bn{i}")
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
    return model


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
