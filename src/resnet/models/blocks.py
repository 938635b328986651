"""Residual building blocks and the paper's three shortcut options.

Layer names follow torchvision (``conv1``/``bn1``/``conv2``/``bn2``/``conv3``/``bn3`` and
``downsample.0``/``downsample.1``) so that its checkpoints load with ``strict=True``.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .specs import ACTIVATIONS, SHORTCUT_OPTIONS



def conv3x3(in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        in_ch, out_ch, kernel_size=3, stride=stride, padding=dilation, groups=groups, bias=False, dilation=dilation
    )


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: parameter-free identity that subsamples and zero-pads the new channels.

    The padding is split evenly before and after the existing channels, which is what the
    widely used CIFAR reproductions do (and what their checkpoints were trained with).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"option-A shortcut cannot reduce channels ({in_ch} -> {out_ch}); use option B or C")
        self.in_ch = in_ch
        self.out_ch = out_ch
        self.stride = stride
        self.pad_before = (out_ch - in_ch) // 2
        self.pad_after = out_ch - in_ch - self.pad_before

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad_before or self.pad_after:
            x = F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_ch}, {self.out_ch}, stride={self.stride}"


def make_shortcut(
    option: str, in_ch: int, out_ch: int, stride: int, *, with_bn: bool = True
) -> nn.Module | None:
    """Return the shortcut module for one block, or ``None`` for a plain identity.

    ``option`` is the paper's A / B / C (Sec. 3.3, Table 3) or ``"none"`` for a plain net.
    Pre-activation blocks project with a bare 1x1 conv (``with_bn=False``) because the
    following block normalises the sum anyway.
    """
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"unknown shortcut option {option!r}; allowed: 'A', 'B', 'C' or 'none' (plain network)")
    if option == "none":
        return None
    shape_changes = stride != 1 or in_ch != out_ch
    if option == "A":
        return ZeroPadShortcut(in_ch, out_ch, stride) if shape_changes else None
    if option == "B" and not shape_changes:
        return None
    if with_bn:
        return nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
    return nn.Sequential(conv1x1(in_ch, out_ch, stride))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (paper Fig. 2 left). ``residual=False`` gives the plain twin."""

    expansion = 1

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        first_dilation: int | None = None,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64; use the bottleneck block")
        out_ch = planes * self.expansion
        self.residual = shortcut != "none"
        self.conv1 = conv3x3(in_ch, planes, stride, dilation=first_dilation or dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, out_ch, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = make_shortcut(shortcut, in_ch, out_ch, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (paper Fig. 5 right).

    ``stride_in_1x1=True`` puts the stride in the first 1x1 as in the paper (v1);
    ``False`` puts it in the 3x3 as torchvision does (v1.5).
    """

    expansion = 4

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        first_dilation: int | None = None,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out_ch = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.residual = shortcut != "none"
        self.conv1 = conv1x1(in_ch, width, s1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3, groups, first_dilation or dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = make_shortcut(shortcut, in_ch, out_ch, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class PreActBasicBlock(nn.Module):
    """BN -> ReLU -> conv, twice ("Identity Mappings in Deep Residual Networks"; also Wide ResNet).

    When the shape changes, the projection sees the pre-activated input, as in the original code.
    """

    expansion = 1

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        first_dilation: int | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("PreActBasicBlock supports only groups=1 and base_width=64")
        out_ch = planes * self.expansion
        self.residual = shortcut != "none"
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv3x3(in_ch, planes, stride, dilation=first_dilation or dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, out_ch, dilation=dilation)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = make_shortcut(shortcut, in_ch, out_ch, stride, with_bn=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.conv2(self.drop(self.relu(self.bn2(out))))
        return out + shortcut if self.residual else out


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (BN -> ReLU -> conv, three times), as in PreResNet-164/1001."""

    expansion = 4

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        first_dilation: int | None = None,
        stride_in_1x1: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out_ch = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.residual = shortcut != "none"
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = conv1x1(in_ch, width, s1)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3, groups, first_dilation or dilation)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_ch)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = make_shortcut(shortcut, in_ch, out_ch, stride, with_bn=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + shortcut if self.residual else out


def activation_layer(name: str) -> nn.Module:
    """The nonlinearity ``name`` (one of :data:`~resnet.models.specs.ACTIVATIONS`): ReLU, GELU as airbench94 has it
    (the exact one, erf), or CELU(0.3) as Page's ResNet-9 tried it."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}, got {name!r}")
    return {"relu": lambda: nn.ReLU(inplace=True), "gelu": nn.GELU, "celu": lambda: nn.CELU(0.3)}[name]()


class ConvBNReLU(nn.Sequential):
    """3x3 convolution, batch norm, ReLU (or ``activation``): the opening layer of a "pool" stage, and half of a
    :class:`ResidualPair`. ``pool=True`` max-pools by 2 straight after the convolution, so batch norm and ReLU see a
    quarter of the values (Page 2019; no parameter moves, so the state dict is the same)."""

    def __init__(self, in_ch: int, out_ch: int, *, pool: bool = False, activation: str = "relu") -> None:
        super().__init__()
        self.conv = conv3x3(in_ch, out_ch)
        if pool:
            self.pool = nn.MaxPool2d(2)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = activation_layer(activation)  # named relu whichever it is: module paths stay as they were


class ResidualPair(nn.Module):
    """``x + relu(bn(conv(relu(bn(conv(x))))))``: Page's residual block (no ReLU after the sum).
    ``residual=False`` gives the plain twin."""

    def __init__(self, channels: int, *, residual: bool = True, activation: str = "relu") -> None:
        super().__init__()
        self.residual = residual
        self.first = ConvBNReLU(channels, channels, activation=activation)
        self.second = ConvBNReLU(channels, channels, activation=activation)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.second.bn

    def forward(self, x: Tensor) -> Tensor:
        out = self.second(self.first(x))
        return x + out if self.residual else out


def pool_stage(in_ch: int, width: int, pairs: int, *, residual: bool = True, pool_first: bool = False,
               activation: str = "relu") -> nn.Sequential:
    """One stage of a "pool" network: conv-BN-ReLU to ``width``, a 2x2 max-pool, ``pairs`` residual pairs.
    ``pool_first`` pools between the convolution and its batch norm instead (an identity keeps the indices)."""
    return nn.Sequential(ConvBNReLU(in_ch, width, pool=pool_first, activation=activation),
                         nn.Identity() if pool_first else nn.MaxPool2d(2),
                         *(ResidualPair(width, residual=residual, activation=activation) for _ in range(pairs)))


BLOCKS: dict[tuple[str, bool], type[nn.Module]] = {
    ("basic", False): BasicBlock,
    ("bottleneck", False): Bottleneck,
    ("basic", True): PreActBasicBlock,
    ("bottleneck", True): PreActBottleneck,
}


def block_class(kind: str, preact: bool) -> type[nn.Module]:
    try:
        return BLOCKS[(kind, preact)]
    except KeyError:
        raise ValueError(f"unknown block {kind!r}; allowed: 'basic' or 'bottleneck'") from None


def zero_init_last_bn(module: nn.Module) -> None:
    """Start each residual branch at zero so every block begins as the identity (Goyal et al.).

    Pre-activation blocks end in a convolution, so there the last conv is zeroed instead.
    """
    for m in module.modules():
        if not getattr(m, "residual", False):
            continue
        with torch.no_grad():
            if isinstance(m, (BasicBlock, Bottleneck, ResidualPair)):
                m.last_bn.weight.zero_()
            elif isinstance(m, PreActBasicBlock):
                m.conv2.weight.zero_()
            elif isinstance(m, PreActBottleneck):
                m.conv3.weight.zero_()
