"""Each convolution of a network on its own (``train_throughput.py --convs``): forward, the gradient of its input
and the gradient of its weight, per layer shape, at the trainer's precision and memory format.

Answers "why does the convolutions' backward cost so much more than their forward" with numbers: a backward is
two convolution-sized products (input gradient and weight gradient), so about 2x the forward is the floor; what
is above it is the kernels' own speed, which the GFLOP/s column sets against the machine's matrix-product rate.
The stem's input gradient is timed but left out of the totals: training never computes it (the images need no
gradient). Layers of one shape are timed once and counted as often as the network has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input, conv2d_weight

from resnet import create_model
from train_throughput import interleaved

PARTS = ("forward", "input gradient", "weight gradient")


@dataclass(frozen=True)
class ConvShape:
    """One convolution as the network runs it on ``side`` x ``side`` inputs."""

    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    side: int
    groups: int = 1

    def macs(self, batch: int) -> int:
        out = (self.side + 2 * self.padding - self.kernel) // self.stride + 1
        return batch * out * out * self.out_channels * self.in_channels // self.groups * self.kernel**2

    def label(self) -> str:
        stride = f", stride {self.stride}" if self.stride > 1 else ""
        return f"{self.kernel}x{self.kernel} {self.in_channels}->{self.out_channels} @ {self.side}{stride}"


def conv_shapes(model: nn.Module, side: int) -> list[tuple[ConvShape, int, bool]]:
    """The distinct 2-d convolutions of ``model`` on one ``side`` x ``side`` image, in order of first use, as
    (shape, how many layers have it, whether one of them is the stem that sees the images)."""
    seen: dict[ConvShape, list[int]] = {}

    def hook(conv: nn.Conv2d, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        if conv.kernel_size[0] != conv.kernel_size[1] or conv.stride[0] != conv.stride[1] or conv.dilation != (1, 1):
            raise ValueError(f"conv_shapes times square, undilated convolutions only, not {conv}")
        shape = ConvShape(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0],
                          int(conv.padding[0]), inputs[0].shape[-1], conv.groups)
        entry = seen.setdefault(shape, [0, 0])
        entry[0] += 1
        entry[1] |= int(inputs[0] is image)

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles = [c.register_forward_hook(hook) for c in convs]
    image = torch.zeros(1, convs[0].in_channels if convs else 3, side, side)
    try:
        model.eval()
        with torch.no_grad():
            model(image)
    finally:
        for h in handles:
            h.remove()
    return [(shape, count, bool(stem)) for shape, (count, stem) in seen.items()]


def products(shape: ConvShape, x: torch.Tensor, w: torch.Tensor,
             grad: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """The three products of one convolution of input ``x`` and weight ``w``, given its output's gradient."""
    conv = dict(stride=shape.stride, padding=shape.padding, groups=shape.groups)
    return {"forward": lambda: F.conv2d(x, w, **conv),
            "input gradient": lambda: conv2d_input(x.shape, w, grad, **conv),
            "weight gradient": lambda: conv2d_weight(x, w.shape, grad, **conv)}


def part_calls(shape: ConvShape, batch: int, dtype: torch.dtype,
               channels_last: bool) -> dict[str, Callable[[], torch.Tensor]]:
    """:func:`products` on random tensors of the shape, ready to time."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, shape.in_channels, shape.side, shape.side, dtype=dtype).contiguous(memory_format=fmt)
    w = torch.randn(shape.out_channels, shape.in_channels // shape.groups, shape.kernel, shape.kernel,
                    dtype=dtype).contiguous(memory_format=fmt)
    out = F.conv2d(x, w, stride=shape.stride, padding=shape.padding, groups=shape.groups)
    return products(shape, x, w, torch.randn_like(out).contiguous(memory_format=fmt))


def conv_table(model_name: str, batch: int, *, dtype: torch.dtype, channels_last: bool, peak_gflops: float,
               side: int = 32, repeats: int = 10, rounds: int = 3) -> str:
    """A markdown table of ``model_name``'s convolutions: milliseconds of each part per layer shape, the
    network's totals, backward over forward, and the GFLOP/s of each part against ``peak_gflops``."""
    rows, totals, macs = [], dict.fromkeys(PARTS, 0.0), dict.fromkeys(PARTS, 0)
    for shape, count, stem in conv_shapes(create_model(model_name, num_classes=10), side):
        ms = {k: 1e3 * v for k, v in interleaved(part_calls(shape, batch, dtype, channels_last),  # type: ignore[arg-type]
                                                   repeats, rounds, warmup=1).items()}
        rate = 2 * shape.macs(batch) / 1e6 / max(min(ms.values()), 1e-9)
        rows.append(f"| {shape.label()}{' (stem)' if stem else ''} | {count} | " +
                    " | ".join(f"{ms[p]:.3f}" for p in PARTS) + f" | {rate:.0f} |")
        for part in PARTS:
            if not (stem and part == "input gradient"):
                totals[part] += count * ms[part]
                macs[part] += count * shape.macs(batch)
    backward = totals["input gradient"] + totals["weight gradient"]
    gflops = {p: 2 * macs[p] / 1e6 / totals[p] if totals[p] else 0.0 for p in PARTS}
    head = (f"{model_name}, batch {batch}, {'bf16' if dtype == torch.bfloat16 else 'fp32'} "
            f"{'channels_last' if channels_last else 'NCHW'}, {torch.get_num_threads()} threads; milliseconds per "
            f"layer (median of {rounds} interleaved rounds of {repeats} calls)\n"
            "| convolution | layers | forward | input gradient | weight gradient | best GFLOP/s |\n"
            "|---|---:|---:|---:|---:|---:|")
    total = (f"| **all layers** | | **{totals['forward']:.2f}** | **{totals['input gradient']:.2f}** | "
             f"**{totals['weight gradient']:.2f}** | |")
    summary = (f"backward / forward: {backward / totals['forward']:.2f}x (2x is two products of the forward's size); "
               f"GFLOP/s forward {gflops['forward']:.0f}, input gradient {gflops['input gradient']:.0f}, weight "
               f"gradient {gflops['weight gradient']:.0f}, against a {peak_gflops:.0f} GFLOP/s matrix product")
    return "\n".join([head, *rows, total, "", summary])
