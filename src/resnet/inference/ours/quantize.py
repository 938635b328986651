"""Post-training static int8 quantization run on oneDNN's fused int8 convolutions.

Scheme (the one PyTorch's x86 Inductor quantizer uses): weights symmetric int8 per output
channel; activations uint8 per tensor, ranges chosen by a histogram observer (MSE-optimal
clipping) on calibration images; every ReLU and every "add shortcut, then ReLU" is fused into the
convolution that feeds it, so activations stay uint8 channels_last from the first convolution to
the global pool. The pool and the linear head run in float32.

PyTorch 2.14 moved the PT2E front end (``prepare_pt2e`` / ``X86InductorQuantizer``) to TorchAO;
the kernels it lowers to (``onednn::qconv_pointwise``) are still in PyTorch, and this module calls
them directly on the plan of :mod:`.plan`, so no compilation step is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import UsageError
from ...models.blocks import ZeroPadShortcut
from .plan import NetPlan, conv_args, conv_input_shapes, run_plan

OBSERVERS = ("histogram", "minmax")


@dataclass(frozen=True)
class QParams:
    scale: float
    zero_point: int


def int8_available() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.onednn, "qconv_pointwise")


def _observer(kind: str) -> nn.Module:
    from ..torchao_import import torchao_module

    # TorchAO's copies of the observers ``torch.ao.quantization`` deprecated: the same algorithms, the same qparams.
    observers = torchao_module("torchao.quantization.pt2e.observer", "int8 calibration")
    HistogramObserver, MinMaxObserver = observers.HistogramObserver, observers.MinMaxObserver  # noqa: N806
    if kind not in OBSERVERS:
        raise UsageError(f"unknown observer {kind!r}; allowed: {', '.join(OBSERVERS)}")
    cls = HistogramObserver if kind == "histogram" else MinMaxObserver
    # reduce_range=False: VNNI (and AMX) accumulate u8*s8 products without the 16-bit saturation
    # that older AVX2 kernels needed the 7-bit activation range for.
    return cls(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=False)


def calibrate(plan: NetPlan, batches: Iterable[Tensor], observer: str = "histogram") -> dict[str, QParams]:
    """Activation quantization parameters at every point the int8 runner stores, from ``batches``."""
    observers: dict[str, nn.Module] = {}

    def observe(name: str, t: Tensor) -> None:
        if name not in observers:
            observers[name] = _observer(observer)
        observers[name](t.detach().float())

    seen = 0
    with torch.inference_mode():
        for batch in batches:
            if not isinstance(batch, Tensor) or batch.ndim != 4:
                raise UsageError("calibration data must be float NCHW tensors (normalised images), one batch at a time")
            run_plan(plan, batch.float(), observe)
            seen += len(batch)
    if seen == 0:
        raise UsageError("int8 calibration needs at least one image; pass calibration=<batches of normalised images>")
    params: dict[str, QParams] = {}
    for name, obs in observers.items():
        scale, zp = obs.calculate_qparams()
        params[name] = QParams(max(float(scale), 1e-8), int(zp))
    return params


def quantize_weight(conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    """(int8 weight, float32 per-output-channel scales), symmetric in [-127, 127]."""
    w = conv.weight.detach().float()
    scale = w.abs().amax(dim=tuple(range(1, w.ndim))).clamp(min=1e-12) / 127.0
    q = torch.clamp(torch.round(w / scale.view(-1, *([1] * (w.ndim - 1)))), -127, 127).to(torch.int8)
    return q, scale


class QuantConv(nn.Module):
    """A folded convolution with int8 weights prepacked for a uint8 input of known scale."""

    def __init__(self, conv: nn.Conv2d, x: QParams, out: QParams | None, input_shape: list[int] | None = None) -> None:
        super().__init__()
        self.padding, self.stride, self.dilation, self.groups = conv_args(conv)
        qw, self.w_scale = quantize_weight(conv)
        self.w_zp = torch.zeros(len(self.w_scale), dtype=torch.int64)
        self.x = x
        self.out = out  # None: float32 output
        self.weight = torch.ops.onednn.qconv_prepack(
            qw, self.w_scale, x.scale, x.zero_point, self.stride, self.padding, self.dilation, self.groups, input_shape
        )
        self.bias = None if conv.bias is None else conv.bias.detach().float()

    def forward(self, q: Tensor, relu: bool) -> Tensor:
        out_scale, out_zp, out_dtype = (self.out.scale, self.out.zero_point, None) if self.out else (1.0, 0, torch.float32)
        return torch.ops.onednn.qconv_pointwise(
            q, self.x.scale, self.x.zero_point, self.weight, self.w_scale, self.w_zp, self.bias,
            self.stride, self.padding, self.dilation, self.groups, out_scale, out_zp, out_dtype,
            "relu" if relu else "none", [], "",
        )

    def add_relu(self, q: Tensor, accum: Tensor, accum_q: QParams) -> Tensor:
        """``relu(conv(q) + accum)`` requantized to ``self.out``; ``accum`` (uint8) is overwritten."""
        if self.out is None:
            raise RuntimeError("add_relu needs a quantized output; build the convolution with out=QParams")
        return torch.ops.onednn.qconv2d_pointwise.binary(
            q, self.x.scale, self.x.zero_point, self.weight, self.w_scale, self.w_zp, accum, self.bias,
            self.stride, self.padding, self.dilation, self.groups, self.out.scale, self.out.zero_point, None,
            accum_q.scale, accum_q.zero_point, "sum", 1.0, "relu", [], "",
        )


def _relu_qparams(q: QParams) -> QParams:
    # A ReLU output has min 0, so its zero point is 0; forcing it lets option-A zero padding be a plain 0.
    return QParams(q.scale, 0)


class QuantizedResNet(nn.Module):
    """int8 runner; takes float NCHW input (normalised like the float model's) and returns float32 logits."""

    def __init__(self, plan: NetPlan, qparams: dict[str, QParams], example_shape: list[int] | None = None) -> None:
        super().__init__()
        if not int8_available():
            raise UsageError("this PyTorch build has no oneDNN int8 kernels; use mode 'onnx-int8' or 'fp32'")
        missing = [k for k in ("input", "stem") if k not in qparams]
        if missing:
            raise ValueError(f"quantization parameters lack {missing}; run calibrate() on this plan")
        self.input_q = qparams["input"]
        shapes = conv_input_shapes(plan, torch.zeros(example_shape)) if example_shape else {}
        current = _relu_qparams(qparams["stem"])
        self.stem = QuantConv(plan.stem, self.input_q, current, shapes.get(id(plan.stem)))
        self.maxpool = plan.maxpool
        self.blocks: list[tuple[list[QuantConv], bool, QuantConv | ZeroPadShortcut | None, QParams]] = []
        for i, block in enumerate(plan.blocks):
            block_in = current
            convs: list[QuantConv] = []
            x = block_in
            for j, conv in enumerate(block.convs[:-1]):
                out = _relu_qparams(qparams[f"block{i}.conv{j}"])
                convs.append(QuantConv(conv, x, out, shapes.get(id(conv))))
                x = out
            block_out = _relu_qparams(qparams[f"block{i}.out"])
            convs.append(QuantConv(block.convs[-1], x, block_out, shapes.get(id(block.convs[-1]))))
            shortcut: QuantConv | ZeroPadShortcut | None = None
            sc_q = block_in
            if block.residual and isinstance(block.shortcut, nn.Conv2d):
                sc_q = qparams[f"block{i}.shortcut"]
                shortcut = QuantConv(block.shortcut, block_in, sc_q, shapes.get(id(block.shortcut)))
            elif block.residual:
                shortcut = block.shortcut
            self.blocks.append((convs, block.residual, shortcut, sc_q))
            current = block_out
        self.out_q = current
        self.fc = plan.fc.float() if plan.fc is not None else None

    def quantize_input(self, x: Tensor) -> Tensor:
        x = x.float().contiguous(memory_format=torch.channels_last)
        # round() is half-to-even, as torch.quantize_per_tensor and ONNX QuantizeLinear round.
        q = (x * (1.0 / self.input_q.scale)).round_().add_(self.input_q.zero_point).clamp_(0, 255)
        return q.to(torch.uint8)

    def maxpool_uint8(self, q: Tensor) -> Tensor:
        # aten's integer max-pool rejects large maps; the quantized kernel takes plain uint8 (and is
        # exact: max commutes with the monotone quantization, so the scale is unchanged).
        mp = self.maxpool
        assert mp is not None
        pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
        return torch.ops.quantized.max_pool2d(
            q, pair(mp.kernel_size), pair(mp.stride if mp.stride is not None else mp.kernel_size), pair(mp.padding), pair(mp.dilation), mp.ceil_mode
        )

    @torch.inference_mode()
    def forward(self, x: Tensor) -> Tensor:
        q = self.stem(self.quantize_input(x), relu=True)
        if self.maxpool is not None:
            q = self.maxpool_uint8(q)
        for convs, residual, shortcut, sc_q in self.blocks:
            h = q
            for conv in convs[:-1]:
                h = conv(h, relu=True)
            last = convs[-1]
            if not residual:
                q = last(h, relu=True)
                continue
            if shortcut is None:
                # The fused add overwrites its accumulator; a one-conv block still reads q as its input.
                accum = q if len(convs) > 1 else q.clone()
            elif isinstance(shortcut, QuantConv):
                accum = shortcut(q, relu=False)
            else:  # option A: strided slice and zero channels; zero is code 0 since the input is post-ReLU
                accum = shortcut(q).contiguous(memory_format=torch.channels_last)
            q = last.add_relu(h, accum, sc_q)
        pooled = q.float().mean(dim=(2, 3)).sub_(self.out_q.zero_point).mul_(self.out_q.scale)
        return F.linear(pooled, self.fc.weight, self.fc.bias) if self.fc is not None else pooled


def quantize_int8(
    plan: NetPlan, calibration: Iterable[Tensor], observer: str = "histogram", example_shape: list[int] | None = None
) -> QuantizedResNet:
    """Calibrate on ``calibration`` (batches of normalised float NCHW images) and build the int8 runner."""
    return QuantizedResNet(plan, calibrate(plan, calibration, observer), example_shape)
