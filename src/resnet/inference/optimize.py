"""``optimize(model, mode)``: the model as a fast inference callable.

Modes (all take float NCHW input normalised as for the original model and return float32 logits):

- ``eager`` (also spelled ``none``, as on the command line): the model in evaluation mode, unchanged (the baseline);
- ``fp32``: BN folded into the convolutions, weights prepacked for oneDNN, activations
  channels_last, ReLU and residual additions fused into the convolutions; the predictions
  equal the unoptimised model's up to float rounding;
- ``bf16``: the same with bfloat16 weights and activations (float32 head); on a CPU without
  oneDNN bfloat16 convolutions (no AVX-512 / AVX-NE-CONVERT, e.g. AVX2-only parts) it falls back
  to bf16 autocast in eager PyTorch, which gives bf16 numerics but is slower than ``fp32``;
- ``int8``: post-training static quantization calibrated on real images (see :mod:`.quantize`).

Networks the fused runners do not cover (pre-activation blocks, ``features_only``) fall back to
BN folding + channels_last (+ bf16 autocast) in eager PyTorch; ``compile=True`` then adds
``torch.compile`` with Inductor, which needs a C++ compiler and minutes on a small machine.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..utils.modes import AUTO, DEFAULT_ENGINE, EAGER, MODES, canonical_mode
from .choice import select_engine
from .engines import AUTO_FAMILIES, OURS, OnnxFiles, candidates, check_engine, tag
from .graphs import default_example
from .fold import fold_bn
from .ours import unsupported_reason
from .ours.fused import BF16_NEEDS, FusedResNet, onednn_bf16_available
from .ours.plan import NetPlan, build_plan, macs_per_image
from .ours.quantize import OBSERVERS, quantize_int8
from .shard import BatchSharded, SmallCallsSingleThreaded, slice_count

CALIBRATION_BATCH = 32
#: The batch ``engine="auto"`` measures at when no ``example_input`` says which: one image, the latency case.
AUTO_BATCH = 1
BF16_FALLBACK_NOTE = (
    f"this CPU has no oneDNN bfloat16 convolutions (they need {BF16_NEEDS}): "
    "mode bf16 runs as bf16 autocast in eager PyTorch, slower than fp32"
)
_said: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        print(f"resnet.inference: {message}", file=sys.stderr)


class ChannelsLast(nn.Module):
    """Fallback runner: a (folded) model fed channels_last input, optionally under bf16 autocast."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)
        self.dtype = dtype

    @torch.inference_mode()
    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if self.dtype == torch.bfloat16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.model(x).float()
        return self.model(x)


def calibration_batches(calibration: Tensor | Iterable[Tensor] | None, batch_size: int = CALIBRATION_BATCH) -> list[Tensor]:
    """Normalise ``calibration`` (one ``[N, C, H, W]`` tensor or an iterable of them) to a list of float batches."""
    if calibration is None:
        raise UsageError(
            "mode 'int8' needs calibration images: optimize(model, 'int8', calibration=<normalised float [N, C, H, W] images>)"
        )
    if isinstance(calibration, Tensor):
        if calibration.ndim != 4 or not calibration.is_floating_point():
            raise UsageError(f"calibration must be normalised float images [N, C, H, W], got {calibration.dtype} {tuple(calibration.shape)}")
        return [b.float() for b in calibration.split(batch_size)]
    batches = [b if isinstance(b, Tensor) else b[0] for b in calibration]  # (images, labels) pairs are accepted
    if not batches:
        raise UsageError("calibration is empty; pass at least one batch of normalised images")
    return [b.float() for b in batches]


def _compiled(module: nn.Module) -> nn.Module:
    try:
        import torch._inductor.config as inductor_config

        # Freezing turns weights into constants so Inductor can fold BN and prepack oneDNN weights.
        inductor_config.freezing = True
        return torch.compile(module, backend="inductor")  # type: ignore[return-value]
    except Exception as err:  # noqa: BLE001 - any failure to set up compilation falls back to eager
        warnings.warn(f"torch.compile is unavailable ({type(err).__name__}: {err}); running uncompiled", stacklevel=3)
        return module


def _by_call_size(runner: nn.Module, plan: NetPlan) -> nn.Module:
    """Small calls on one thread (see :class:`~resnet.inference.shard.SmallCallsSingleThreaded`)."""
    return SmallCallsSingleThreaded(runner, lambda c, h, w: macs_per_image(plan, c, h, w))


def optimize(
    model: nn.Module,
    mode: str,
    *,
    calibration: Tensor | Iterable[Tensor] | None = None,
    example_input: Tensor | None = None,
    observer: str = "histogram",
    compile: bool = False,
    shard: bool | None = None,
    engine: str = DEFAULT_ENGINE,
) -> nn.Module:
    """Return an inference module for ``model`` in ``mode`` (one of :data:`MODES`); ``model`` is not modified.

    ``example_input`` (a batch of the shape you will run) lets oneDNN prepack weights for that shape,
    which matters most for int8. ``shard`` splits large batches over the cores, one thread each
    (:mod:`.shard`); by default on for the float modes, where it measured faster, and off for int8,
    where it did not. ``calibration`` (normalised float images, a tensor or an iterable
    of batches) is required for ``int8``; a few hundred images are plenty.

    ``engine`` (:data:`~resnet.inference.engines.ENGINES`) says what runs it; the result always takes float
    NCHW images and returns float32 logits, and its ``engine`` attribute names the engine that runs it:

    - ``"auto"`` (the default, :data:`~resnet.utils.modes.DEFAULT_ENGINE`): measure every engine of
      :data:`~resnet.inference.engines.AUTO_FAMILIES` able to run ``mode`` here (ours; ONNX Runtime fp32 and
      int8 as QDQ and QOperator U8U8; OpenVINO f32, bf16 and NNCF int8) at the batch shape of ``example_input`` (without it, a
      batch of :data:`AUTO_BATCH` random images of the network's input size), and keep the fastest whose top-1
      agrees with the float model on the calibration images (:mod:`.choice` gives the rule). The choice is
      cached per machine, arithmetic, batch shape and network, so a later call with the same key builds the
      chosen engine without measuring; an engine that is missing or fails here is skipped with one line;
    - ``"ours"``: our fused oneDNN runners (:mod:`.ours`), never measured, never importing another runtime;
    - ``"onnxruntime"`` / ``"openvino"`` / ``"pytorch"``: that family (its fastest form, measured and cached
      as ``auto`` is); ``pytorch`` is ``torch.export`` compiled by AOTInductor (fp32, bf16) and torchao's PT2E
      int8 (:mod:`.pytorch`), tens of seconds of compiling per arithmetic.

    The first ``auto`` call for a network on a machine costs the conversions (an ONNX export, OpenVINO's
    conversion, the int8 quantizations) and the timing: seconds for ResNet-20, tens of seconds for ResNet-50
    on two cores. ``resnet bench`` shows every engine's figures and which one ``auto`` picks.
    """
    mode = canonical_mode(mode)
    if mode not in MODES:
        raise UsageError(f"unknown optimization mode {mode!r}; choose one of {', '.join(MODES)}")
    if observer not in OBSERVERS:
        raise UsageError(f"unknown observer {observer!r}; choose one of {', '.join(OBSERVERS)}")
    check_engine(engine, mode)
    if mode == EAGER:
        return model.eval()
    # fp32 / bf16 ignore calibration images, except as the images other engines are checked on.
    batches = calibration_batches(calibration) if mode == "int8" or (engine != OURS and calibration is not None) else None
    build_ours = lambda: _optimize_ours(model, mode, batches, example_input, observer, compile, shard)  # noqa: E731
    if engine == OURS:
        return tag(build_ours(), OURS)
    threads = torch.get_num_threads()
    example = example_input if example_input is not None else default_example(model, batch=AUTO_BATCH)
    with tempfile.TemporaryDirectory(prefix="resnet-engines-") as tmp:
        files = OnnxFiles(model.eval(), Path(tmp), example, batches)
        families = AUTO_FAMILIES if engine == AUTO else (OURS, engine)
        cands = [c for c in candidates(mode, build_ours, files, threads, families) if engine == AUTO or c.family == engine]
        return select_engine(model, mode, engine, cands, example_input=example, calibration=batches, threads=threads,
                             say=_say_once)


def _optimize_ours(
    model: nn.Module, mode: str, calibration: list[Tensor] | None, example_input: Tensor | None, observer: str, compile: bool,
    shard: bool | None,
) -> nn.Module:
    """Our runner for ``mode`` (validated, not eager): fused oneDNN, or the channels_last fallback."""
    shape = list(example_input.shape) if example_input is not None else None
    try:
        fallback_reason = unsupported_reason() or ""
        plan = None if fallback_reason else build_plan(model)
    except UsageError as err:
        plan, fallback_reason = None, str(err)
    workers = torch.get_num_threads()
    shard = (mode != "int8" and workers > 1) if shard is None else shard
    if shard and shape is not None and shape[0] >= 2 * workers:
        slices = slice_count(shape[0], shape[-2] * shape[-1], workers)
        shape = [-(-shape[0] // slices), *shape[1:]]  # prepacked for the (largest) slice
    if mode == "int8":
        if plan is None:
            raise UsageError(f"mode 'int8' is not available for this network: {fallback_reason}")
        quantized = quantize_int8(plan, calibration_batches(calibration), observer, shape)
        return _by_call_size(BatchSharded(quantized, workers) if shard else quantized, plan)
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    if plan is not None and dtype == torch.bfloat16 and not onednn_bf16_available():
        plan, fallback_reason = None, ""
        _say_once(BF16_FALLBACK_NOTE)
    if plan is not None and not compile:
        fused = FusedResNet(plan, dtype, shape)
        return _by_call_size(BatchSharded(fused, workers) if shard else fused, plan)
    runner = ChannelsLast(fold_bn(model), dtype)
    if compile:
        runner = _compiled(runner)
    elif fallback_reason:
        _say_once(f"{fallback_reason}; using BN folding + channels_last instead")
    return runner

