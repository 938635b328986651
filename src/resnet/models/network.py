"""One ``ResNet`` module, built from a :class:`~resnet.models.specs.ModelSpec`.

Stages are built by pure functions that return modules (no hidden ``inplanes`` state).
Every model shares the interface ``forward_features`` / ``forward_head`` /
``reset_classifier`` / ``feature_info`` / ``set_grad_checkpointing``; with
``features_only=True`` the forward pass returns every stage's output instead of logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint_sequential

from .blocks import activation_layer, block_class, pool_stage, zero_init_last_bn
from .specs import ModelSpec


@dataclass(frozen=True)
class StageInfo:
    module: str  # attribute name, e.g. "layer3"
    num_chs: int
    reduction: int  # total stride of this stage's output w.r.t. the input
    dilation: int

    def as_dict(self) -> dict[str, int | str]:
        return {"module": self.module, "num_chs": self.num_chs, "reduction": self.reduction, "dilation": self.dilation}


def _stage_plan(spec: ModelSpec) -> list[tuple[int, int, int]]:
    """(stride, dilation of the first block, dilation of the rest) for each stage.

    Strides beyond ``output_stride`` become dilation, as torchvision's ``replace_stride_with_dilation``.
    """
    if spec.block == "pool":  # every stage max-pools by 2
        return [(2, 1, 1)] * len(spec.layers)
    reduction = 4 if spec.stem == "imagenet" else 1
    dilation = 1
    plan = []
    for i in range(len(spec.layers)):
        stride = 1 if i == 0 else 2
        first_dilation = dilation
        if stride == 2 and reduction * 2 > spec.effective_output_stride:
            dilation *= 2
            stride = 1
        reduction *= stride
        plan.append((stride, first_dilation, dilation))
    return plan


def make_stage(
    spec: ModelSpec, in_ch: int, planes: int, num_blocks: int, stride: int, first_dilation: int, dilation: int
) -> tuple[nn.Sequential, int]:
    """Return one stage (a ``Sequential`` of blocks) and its output channel count."""
    if spec.block == "pool":
        return pool_stage(in_ch, planes, num_blocks, residual=spec.shortcut != "none", pool_first=spec.pool_first,
                          activation=spec.activation), planes
    block = block_class(spec.block, spec.preact)
    kwargs: dict[str, object] = dict(
        shortcut=spec.shortcut,
        groups=spec.groups,
        base_width=spec.base_width,
    )
    if spec.block == "bottleneck":  # where a bottleneck strides; basic blocks have no 1x1
        kwargs["stride_in_1x1"] = spec.version == "v1"
    if spec.drop_in_blocks and spec.drop_rate > 0:
        kwargs["drop_rate"] = spec.drop_rate
    blocks: list[nn.Module] = []
    for i in range(num_blocks):
        blocks.append(
            block(
                in_ch,
                planes,
                stride if i == 0 else 1,
                dilation=dilation,
                first_dilation=first_dilation if i == 0 else dilation,
                **kwargs,
            )
        )
        in_ch = planes * block.expansion
    return nn.Sequential(*blocks), in_ch


def init_weights(model: nn.Module) -> None:
    """He (Kaiming) normal init for convolutions, as in the paper (Sec. 3.4), unit BN."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet(nn.Module):
    """A residual (or plain) network described by ``spec``; ``model_name`` is the name it was built by (shown in
    messages, written into exported files)."""

    model_name: str

    def __init__(self, spec: ModelSpec, *, features_only: bool = False, out_indices: Sequence[int] | None = None,
                 model_name: str = "resnet") -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        self.model_name = model_name
        self.num_classes = spec.num_classes
        self.features_only = features_only
        self.grad_checkpointing = False

        if spec.stem == "imagenet":
            self.conv1 = nn.Conv2d(spec.in_chans, spec.stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(spec.in_chans, spec.stem_width, kernel_size=3, stride=1, padding=1, bias=False)
        # Pre-activation nets normalise inside each block, so the stem is a bare convolution.
        self.bn1: nn.Module = nn.Identity() if spec.preact else nn.BatchNorm2d(spec.stem_width)
        self.relu = nn.Identity() if spec.preact else activation_layer(spec.activation)
        self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1) if spec.stem == "imagenet" else nn.Identity()

        in_ch = spec.stem_width
        reduction = 4 if spec.stem == "imagenet" else 1
        infos: list[StageInfo] = []
        self.stage_names: list[str] = []
        for i, ((stride, first_dil, dil), planes, n) in enumerate(zip(_stage_plan(spec), spec.widths, spec.layers)):
            stage, in_ch = make_stage(spec, in_ch, planes, n, stride, first_dil, dil)
            name = f"layer{i + 1}"
            self.add_module(name, stage)
            self.stage_names.append(name)
            reduction *= stride
            infos.append(StageInfo(name, in_ch, reduction, dil))
        self.num_features = in_ch
        self.final_bn: nn.Module = nn.BatchNorm2d(in_ch) if spec.preact else nn.Identity()
        self.final_relu: nn.Module = nn.ReLU(inplace=True) if spec.preact else nn.Identity()
        # named avgpool whichever pooling it does, so that torchvision's state-dict and module names hold
        self.avgpool: nn.Module = nn.AdaptiveMaxPool2d(1) if spec.head_pool == "max" else nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(spec.drop_rate) if spec.drop_rate > 0 and not spec.drop_in_blocks else nn.Identity()
        self.fc: nn.Module = nn.Linear(in_ch, spec.num_classes, bias=spec.fc_bias) if spec.num_classes > 0 else nn.Identity()
        self.logit_scale = spec.logit_scale

        self._stage_infos = infos
        n_stages = len(infos)
        self.out_indices = tuple(range(n_stages)) if out_indices is None else tuple(out_indices)
        for idx in self.out_indices:
            if not 0 <= idx < n_stages:
                raise ValueError(f"out_indices entries must be in [0, {n_stages - 1}], got {self.out_indices}")
        if features_only:
            self.fc = nn.Identity()

        init_weights(self)
        if spec.zero_init_residual:
            zero_init_last_bn(self)

    # -- shared interface -------------------------------------------------------------------
    @property
    def feature_info(self) -> list[dict[str, int | str]]:
        """Channels, total stride and dilation of each stage's output."""
        return [info.as_dict() for info in self._stage_infos]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations."""
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a fresh ``num_classes``-way linear layer (0 removes it)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes, bias=self.spec.fc_bias) if num_classes > 0 else nn.Identity()

    def stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def _run_stage(self, stage: nn.Sequential, x: Tensor) -> Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            # sqrt(n) segments: only each segment's input is kept, so a stage of n blocks stores
            # O(sqrt(n)) activations instead of O(n) (Chen et al. 2016).
            segments = max(1, math.isqrt(len(stage)))
            return checkpoint_sequential(stage, segments, x, use_reentrant=False)
        return stage(x)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """Outputs of every stage (the last one after the final pre-activation BN/ReLU)."""
        x = self.stem(x)
        outs: list[Tensor] = []
        last = len(self.stage_names) - 1
        for i, name in enumerate(self.stage_names):
            x = self._run_stage(getattr(self, name), x)
            if i == last:
                x = self.final_relu(self.final_bn(x))
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        """The last feature map, before pooling."""
        x = self.stem(x)
        for name in self.stage_names:
            x = self._run_stage(getattr(self, name), x)
        return self.final_relu(self.final_bn(x))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global average pool and classify; ``pre_logits=True`` returns the pooled features."""
        x = torch.flatten(self.avgpool(x), 1)
        x = self.drop(x)
        if pre_logits:
            return x
        x = self.fc(x)
        return x * self.logit_scale if self.logit_scale != 1.0 else x

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        if self.features_only:
            outs = self.forward_stages(x)
            return [outs[i] for i in self.out_indices]
        return self.forward_head(self.forward_features(x))
