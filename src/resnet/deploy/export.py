"""Export to ONNX and TorchScript, checked against PyTorch before the file is put in place.

Each export is written to a temporary file beside the destination, loaded back into its runtime
(ONNX Runtime for ONNX, ``torch.jit.load`` for TorchScript), run on the example batch (and, with a
dynamic batch, on a second batch size) and compared with the PyTorch model's logits. Only an
export whose largest absolute difference is within ``atol`` replaces the destination; otherwise
:class:`~resnet.errors.ResNetError` says by how much it missed and nothing is written.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import ResNetError, UsageError
from ..utils.atomic import atomic_path
from ..inference.fold import fold_bn
from ..inference.graphs import default_example, onnx_program

FORMATS = ("onnx", "torchscript")
DEFAULT_ATOL = 1e-4
# File name endings and the format they mean; an export never writes one format under another's name.
SUFFIX_FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript"}
TORCHSCRIPT_METADATA = "resnet.json"  # the extra file of a TorchScript archive that holds the metadata


def format_for_path(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The export format: ``fmt`` if given (it must agree with a known file ending), else the ending's."""
    suffix = Path(path).suffix.lower()
    implied = SUFFIX_FORMATS.get(suffix)
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt is not None and implied is not None and implied != fmt:
        raise UsageError(f"{Path(path).name} ends in {suffix}, which means {implied}, but the format asked for is {fmt}; "
                         f"name the file *.{'onnx' if fmt == 'onnx' else 'pt'} or ask for {implied}")
    if fmt is None and implied is None:
        endings = ", ".join(SUFFIX_FORMATS)
        raise UsageError(f"cannot tell the export format from the file name {Path(path).name}; end it in one of {endings}, or name the format")
    return fmt or implied  # type: ignore[return-value]


def export_metadata(model: nn.Module, extra: dict[str, object] | None = None) -> dict[str, str]:
    """String metadata for an exported file: ``resnet`` (the JSON our safetensors files carry: model,
    spec, classes, preprocessing) plus flat ``classes`` / ``mean`` / ``std`` / ``input_size`` for other tools."""
    import json
    from dataclasses import asdict

    meta: dict[str, object] = {"format": "resnet", "version": 1, "model": getattr(model, "model_name", None)}
    spec = getattr(model, "spec", None)
    if spec is not None:
        meta["spec"] = {k: v for k, v in asdict(spec).items() if k != "extra"}
    meta.update(extra or {})
    flat = {"resnet": json.dumps(meta, default=str)}
    if meta.get("classes"):
        flat["classes"] = json.dumps(meta["classes"])
    pre = meta.get("preprocess")
    if isinstance(pre, dict):
        for key in ("mean", "std", "input_size", "resize", "crop"):
            if pre.get(key) is not None:
                flat[key] = json.dumps(pre[key])
    return flat


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_diff: float
    batch_sizes: list[int]
    input_shape: list[int]
    dynamic_batch: bool
    folded_bn: bool
    details: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path), "format": self.format, "max_abs_diff": self.max_abs_diff, "batch_sizes": self.batch_sizes,
            "input_shape": self.input_shape, "dynamic_batch": self.dynamic_batch, "folded_bn": self.folded_bn, **self.details,
        }


def _prepare(model: nn.Module, fold: bool) -> nn.Module:
    if getattr(model, "features_only", False):
        raise UsageError("cannot export a features_only network (it returns a list of maps); build it with logits")
    return fold_bn(model) if fold else model.eval()


def _check_batches(example: Tensor, dynamic_batch: bool) -> list[Tensor]:
    gen = torch.Generator().manual_seed(0)
    checks = [example]
    if dynamic_batch:
        other = 3 if len(example) != 3 else 1
        checks.append(torch.randn((other, *example.shape[1:]), generator=gen))
    return checks


def _verify(run: Callable[[Tensor], Tensor], model: nn.Module, inputs: list[Tensor], atol: float, what: str) -> float:
    worst = 0.0
    with torch.inference_mode():
        for x in inputs:
            expected = model(x).float()
            try:
                got = run(x).float()
            except Exception as err:  # runtimes raise their own exception types
                raise ResNetError(f"the exported {what} fails on a batch of {len(x)}: {str(err).splitlines()[0]}") from None
            if got.shape != expected.shape:
                raise ResNetError(f"the exported {what} returns shape {tuple(got.shape)} for a batch of {len(x)}, PyTorch {tuple(expected.shape)}")
            worst = max(worst, float((got - expected).abs().max()))
    if not worst <= atol:  # also catches NaN
        raise ResNetError(
            f"the exported {what} differs from PyTorch by {worst:.3g} (max abs logit difference, allowed {atol:g}); "
            "nothing was written. Try without `fold_bn`, another opset, or the other `format`"
        )
    return worst


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    example_input: Tensor | None = None,
    dynamic_batch: bool = False,
    fold: bool = False,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    metadata: dict[str, object] | None = None,
) -> ExportReport:
    """Export ``model`` to ONNX at ``path`` (input ``input``, output ``logits``), verified with ONNX Runtime.

    The file's ``metadata_props`` carry :func:`export_metadata` (class names, preprocessing, architecture).
    """
    from ..inference.onnx_runtime import OrtModel

    model = _prepare(model, fold)
    example = default_example(model) if example_input is None else example_input.float()
    program = onnx_program(model, example, dynamic_batch, opset)
    target = Path(path)
    with atomic_path(target) as tmp:
        program.save(tmp, external_data=False)
        _set_onnx_metadata(tmp, export_metadata(model, metadata))
        runtime = OrtModel(tmp)
        diff = _verify(runtime, model, _check_batches(example, dynamic_batch), atol, "ONNX model (ONNX Runtime)")
        del runtime
    return ExportReport(
        target, "onnx", diff, [len(x) for x in _check_batches(example, dynamic_batch)], list(example.shape), dynamic_batch, fold,
        {"runtime": "onnxruntime"},
    )


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    example_input: Tensor | None = None,
    dynamic_batch: bool = False,
    fold: bool = False,
    atol: float = DEFAULT_ATOL,
    metadata: dict[str, object] | None = None,
) -> ExportReport:
    """Trace ``model`` to TorchScript at ``path``, verified by loading it back with ``torch.jit.load``.

    The archive holds :func:`export_metadata` as JSON in its extra file ``resnet.json``.

    A traced ResNet has no batch-dependent code, so the file accepts any batch size; with
    ``dynamic_batch`` that is checked on a second batch size.
    """
    model = _prepare(model, fold)
    example = default_example(model) if example_input is None else example_input.float()
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (example,), check_trace=False)
    except Exception as err:  # noqa: BLE001 - the tracer raises many types
        raise ResNetError(f"TorchScript export failed: {str(err).strip().splitlines()[0]}") from None
    target = Path(path)
    with atomic_path(target) as tmp:
        with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export, still the portable format
            warnings.simplefilter("ignore")
            import json

            extra = {TORCHSCRIPT_METADATA: json.dumps(export_metadata(model, metadata))}
            torch.jit.save(traced, str(tmp), _extra_files=extra)
            loaded = torch.jit.load(str(tmp), map_location="cpu")
            diff = _verify(loaded, model, _check_batches(example, dynamic_batch), atol, "TorchScript model")
    return ExportReport(
        target, "torchscript", diff, [len(x) for x in _check_batches(example, dynamic_batch)], list(example.shape), dynamic_batch, fold,
        {"runtime": "torch.jit"},
    )


def _set_onnx_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def read_export_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata :func:`export` wrote into an ONNX or TorchScript file (``{}`` if none)."""
    import json

    if format_for_path(path) == "onnx":
        import onnx

        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    extra = {TORCHSCRIPT_METADATA: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[TORCHSCRIPT_METADATA]) if extra[TORCHSCRIPT_METADATA] else {}


def export(model: nn.Module, path: str | os.PathLike[str], fmt: str | None = None, **kwargs: object) -> ExportReport:
    """Export to ``fmt`` (default: the one ``path``'s ending names, see :func:`format_for_path`)."""
    fmt = format_for_path(path, fmt)
    fn = export_onnx if fmt == "onnx" else export_torchscript
    return fn(model, path, **kwargs)  # type: ignore[arg-type]
