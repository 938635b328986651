"""Float inference with oneDNN's fused convolutions (what Inductor's freezing passes emit, without
the compile time): BN folded, weights reordered once into oneDNN's blocked layout, activations
channels_last, and ReLU / "add shortcut then ReLU" applied inside the convolution kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import UsageError
from . import unsupported_reason
from .plan import NetPlan, conv_args, conv_input_shapes

_mkldnn = torch.ops.mkldnn


def onednn_available() -> bool:
    """Whether our engine runs here: oneDNN kernels in a PyTorch release it is tested on (:mod:`resnet.inference.ours`)."""
    return unsupported_reason() is None


BF16_NEEDS = "AVX512-BW/VL/DQ (AVX512-BF16 or AMX for full speed) or AVX-NE-CONVERT"


def onednn_bf16_available() -> bool:
    """Whether oneDNN runs bfloat16 convolutions on this CPU (PyTorch refuses them below AVX-512 / AVX-NE-CONVERT)."""
    if not onednn_available():
        return False
    check = getattr(_mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


class FusedConv(nn.Module):
    """One folded convolution with its weight pre-reordered for oneDNN."""

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype, input_shape: list[int] | None) -> None:
        super().__init__()
        self.padding, self.stride, self.dilation, self.groups = conv_args(conv)
        weight = conv.weight.detach().to(dtype)
        # Opaque oneDNN tensors cannot be registered as parameters or buffers (no state_dict, no deepcopy
        # of storage); they are rebuilt from the float module by optimize() whenever needed.
        self.weight = _mkldnn._reorder_convolution_weight(weight, self.padding, self.stride, self.dilation, self.groups, input_shape)
        self.bias = None if conv.bias is None else conv.bias.detach().to(dtype)

    def forward(self, x: Tensor, relu: bool) -> Tensor:
        return _mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, "relu" if relu else "none", [], ""
        )

    def add_relu_(self, x: Tensor, shortcut: Tensor) -> Tensor:
        """``relu(conv(x) + shortcut)`` in one kernel, written over ``shortcut``.

        Writing in place matters more than it seems: a fresh output of this size is a new mmap
        allocation on every call, and faulting its pages in costs as much as the addition saves.
        """
        return _mkldnn._convolution_pointwise_.binary(
            shortcut, x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups, "add", None, "relu", [], ""
        )


class FusedResNet(nn.Module):
    """Float32 or bfloat16 inference runner; takes float NCHW input of any batch and size, returns float32 logits."""

    def __init__(self, plan: NetPlan, dtype: torch.dtype = torch.float32, example_shape: list[int] | None = None) -> None:
        super().__init__()
        if not onednn_available():
            raise UsageError("this PyTorch build has no oneDNN (mkldnn) kernels; use mode 'eager'")
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"dtype must be float32 or bfloat16, got {dtype}")
        if dtype == torch.bfloat16 and not onednn_bf16_available():
            raise UsageError(f"this CPU has no oneDNN bfloat16 convolutions (they need {BF16_NEEDS}); use float32")
        self.dtype = dtype
        shapes = conv_input_shapes(plan, torch.zeros(example_shape)) if example_shape else {}
        self.stem = FusedConv(plan.stem, dtype, shapes.get(id(plan.stem)))
        self.maxpool = plan.maxpool
        self.blocks: list[tuple[list[FusedConv], bool, FusedConv | nn.Module | None]] = []
        for block in plan.blocks:
            convs = [FusedConv(c, dtype, shapes.get(id(c))) for c in block.convs]
            sc = block.shortcut
            shortcut: FusedConv | nn.Module | None = FusedConv(sc, dtype, shapes.get(id(sc))) if isinstance(sc, nn.Conv2d) else sc
            self.blocks.append((convs, block.residual, shortcut))
        # The head is tiny; it runs in float32 so bf16 only affects the convolutions.
        self.fc = plan.fc.float() if plan.fc is not None else None

    @torch.inference_mode()
    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        x = self.stem(x, relu=True)
        if self.maxpool is not None:
            x = self.maxpool(x)
        for convs, residual, shortcut in self.blocks:
            h = x
            for conv in convs[:-1]:
                h = conv(h, relu=True)
            last = convs[-1]
            if not residual:
                x = last(h, relu=True)
                continue
            if shortcut is None:
                sc = x
            elif isinstance(shortcut, FusedConv):
                sc = shortcut(x, relu=False)
            else:
                sc = shortcut(x).contiguous(memory_format=torch.channels_last)
            x = last.add_relu_(h, sc if len(convs) > 1 or sc is not x else sc.clone())
        x = x.float().mean(dim=(2, 3))
        return F.linear(x, self.fc.weight, self.fc.bias) if self.fc is not None else x
