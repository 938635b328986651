"""Number formats and backend flags of a run: autocast type per device, deterministic or fast kernels."""

from __future__ import annotations

import contextlib
import os

import torch

from ..errors import UsageError


def cpu_has_native_bf16() -> bool:
    with contextlib.suppress(Exception):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``None`` means float32 throughout."""
    if precision == "fp32":
        return None
    if device.type == "cpu":
        if precision == "fp16":
            raise UsageError("precision fp16 is for GPUs; on CPU use bf16 or fp32")
        if precision == "bf16" or cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def configure_backends(deterministic: bool, device: torch.device) -> None:
    """Deterministic algorithms only, or (on a GPU) cuDNN autotuning and TF32."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
