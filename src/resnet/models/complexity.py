"""Parameters and multiply-adds, counted from the modules a forward pass actually runs.

Multiply-adds follow the convention of the paper and torchvision: convolutions and fully
connected layers only (BN, ReLU, pooling and the additions are a rounding error and are not
counted). One multiply-add per weight use: ``out_elements * in_channels / groups * kh * kw``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .data_config import IMAGENET_DATA_CONFIG


@dataclass
class StageComplexity:
    name: str
    output_size: tuple[int, int]
    channels: int
    blocks: int
    params: int
    macs: int


@dataclass
class Complexity:
    params: int
    macs: int
    input_size: int
    stages: list[StageComplexity] = field(default_factory=list)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _module_macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() // out.shape[0] * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out.numel() // out.shape[0] * module.in_features
    return 0


@torch.no_grad()
def count_macs(model: nn.Module, input_size: int | tuple[int, int] = IMAGENET_DATA_CONFIG.input_size,
               in_chans: int | None = None) -> Complexity:
    """Count multiply-adds per image (batch of one) and per stage for ``model``."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    spec = getattr(model, "spec", None)
    c = in_chans or (spec.in_chans if spec is not None else 3)
    per_module: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):

            def hook(mod: nn.Module, _inp: object, out: torch.Tensor, name: str = name) -> None:
                per_module[name] = per_module.get(name, 0) + _module_macs(mod, out)

            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        stage_shapes: dict[str, tuple[int, int, int]] = {}
        stage_names = list(getattr(model, "stage_names", []))
        stage_handles = []
        for sname in stage_names:
            stage = getattr(model, sname)

            def shook(_m: nn.Module, _i: object, out: torch.Tensor, sname: str = sname) -> None:
                stage_shapes[sname] = (out.shape[1], out.shape[2], out.shape[3])

            stage_handles.append(stage.register_forward_hook(shook))
        device = next(model.parameters()).device
        model(torch.zeros(1, c, h, w, device=device))
        for handle in stage_handles:
            handle.remove()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    total = sum(per_module.values())
    stages = []
    if stage_names:
        stem_macs = sum(v for k, v in per_module.items() if k.startswith("conv1"))
        stem_params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("conv1.", "bn1.")))
        first = stage_shapes[stage_names[0]]
        stem_hw = (first[1], first[2]) if spec is not None and spec.stem != "imagenet" else None
        stages.append(StageComplexity("stem", stem_hw or _stem_hw(h, w, spec), spec.stem_width if spec else 0, 0, stem_params, stem_macs))
        for sname in stage_names:
            ch, sh, sw = stage_shapes[sname]
            macs = sum(v for k, v in per_module.items() if k.startswith(sname + "."))
            params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(sname + "."))
            stages.append(StageComplexity(sname, (sh, sw), ch, len(getattr(model, sname)), params, macs))
        head_macs = total - sum(s.macs for s in stages)
        head_params = count_params(model) - sum(s.params for s in stages)
        stages.append(StageComplexity("head", (1, 1), getattr(model, "num_classes", 0), 0, head_params, head_macs))
    return Complexity(params=count_params(model), macs=total, input_size=h, stages=stages)


def _stem_hw(h: int, w: int, spec: object) -> tuple[int, int]:
    # 7x7/2 conv then 3x3/2 max-pool (the table reports the pooled size, as the paper's conv2_x row).
    def down(n: int) -> int:
        return (n + 2 * 3 - 7) // 2 + 1

    return ((down(h) + 2 - 3) // 2 + 1, (down(w) + 2 - 3) // 2 + 1)
