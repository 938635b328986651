"""The graphs the engines are built from: an example batch of a network's input size, and its ``torch.onnx``
(dynamo) program, which ONNX Runtime and OpenVINO run and :mod:`resnet.deploy.export` writes out."""

from __future__ import annotations

import contextlib
import io
import warnings

import torch
from torch import Tensor, nn

from ..errors import ResNetError
from ..models.data_config import default_input_size


def default_example(model: nn.Module, batch: int = 1, input_size: int | None = None) -> Tensor:
    """A random batch of the input size the network's spec implies (224 ImageNet, 32 CIFAR)."""
    spec = getattr(model, "spec", None)
    channels = getattr(spec, "in_chans", 3)
    size = input_size or default_input_size(spec)
    return torch.randn(batch, channels, size, size)


MIN_DYNAMIC_SIDE = 8  # the smallest image side a graph with a dynamic image size accepts


def dynamic_dims(dynamic_batch: bool, dynamic_size: bool) -> dict[int, object]:
    """``torch.export`` dimensions of an NCHW input left free: the batch, and the height and width (from
    :data:`MIN_DYNAMIC_SIDE` pixels)."""
    dims: dict[int, object] = {0: torch.export.Dim("batch", min=1)} if dynamic_batch else {}
    if dynamic_size:
        dims[2] = torch.export.Dim("height", min=MIN_DYNAMIC_SIDE)
        dims[3] = torch.export.Dim("width", min=MIN_DYNAMIC_SIDE)
    return dims


def onnx_program(  # noqa: ANN202 - torch.onnx.ONNXProgram
    model: nn.Module, example: Tensor, dynamic_batch: bool, opset: int | None, dynamic_size: bool = False
):
    """The ``torch.onnx`` (dynamo) program of ``model`` for ``example``; ``dynamic_batch`` leaves the batch axis free,
    ``dynamic_size`` the height and width (fully convolutional networks)."""
    kwargs: dict[str, object] = {"input_names": ["input"], "output_names": ["logits"], "dynamo": True, "external_data": False}
    if opset is not None:
        kwargs["opset_version"] = opset
    dims = dynamic_dims(dynamic_batch, dynamic_size)
    if dims:
        kwargs["dynamic_shapes"] = (dims,)
    # The exporter narrates its phases on stdout; keep it for the error message only.
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), None, **kwargs)
    except Exception as err:  # torch.onnx raises many exception types
        raise ResNetError(f"ONNX export failed: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}") from None
    if program is None:
        raise ResNetError("ONNX export produced no program")
    return program
