"""Number formats and backend flags of a run: autocast type per device, deterministic or fast kernels."""

from __future__ import annotations

import os

import torch

from ..errors import UsageError
from ..utils.cpu import NATIVE_BF16_FLAGS, has_native_bf16


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``None`` means float32 throughout. On a CPU, bf16 (asked for, or by ``auto``) needs native bf16
    arithmetic (:data:`~resnet.utils.cpu.NATIVE_BF16_FLAGS`); without it the run computes in fp32 (emulated
    bf16 is slower than fp32), and :func:`precision_note` says so."""
    if precision == "fp32":
        return None
    if device.type == "cpu":
        if precision == "fp16":
            raise UsageError("precision fp16 is for GPUs; on CPU use bf16 or fp32")
        return torch.bfloat16 if has_native_bf16() else None
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def precision_note(precision: str, amp: torch.dtype | None, device: torch.device) -> str | None:
    """One line when the run computes in another format than the recipe asked for, else None."""
    if precision == "bf16" and amp is None and device.type == "cpu":
        return (f"precision bf16 asked for, but this CPU has no native bf16 ({' / '.join(NATIVE_BF16_FLAGS)}): "
                "computing in fp32, which is faster here than emulated bf16")
    return None


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
