"""Export to a ``torch.export`` package (``.pt2``), ONNX, OpenVINO IR or (deprecated) TorchScript, each checked
against PyTorch before the file is put in place.

Each export is written to a temporary file beside the destination, loaded back into its runtime
(AOTInductor's loader for ``.pt2``, ONNX Runtime for ONNX, OpenVINO's CPU plugin for IR, ``torch.jit.load`` for
TorchScript), run on the example batch (and, with a dynamic batch, on a second batch size; with a dynamic image
size, at a second height and width) and compared with the PyTorch model's logits. Only an export whose largest
absolute difference is within ``atol`` replaces the destination; otherwise :class:`~resnet.errors.ResNetError`
says by how much it missed and nothing is written.

Every format carries :func:`export_metadata`: the network, its classes and preprocessing, the size the graph was
exported at and whether its batch and image size are dynamic (ONNX ``metadata_props``, the ``.pt2`` package's
AOTInductor metadata, the IR's ``rt_info`` under ``resnet``, TorchScript's extra file ``resnet.json``);
:func:`read_export_metadata` reads it back from any of them.

TorchScript is deprecated (``torch.jit`` is deprecated upstream in favour of ``torch.export``): its export warns
(one ``FutureWarning`` naming the ``torch.jit`` calls that warned) and goes in resnet
:data:`TORCHSCRIPT_REMOVED_IN`; ``pt2`` replaces it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import ResNetError, UsageError
from ..utils.atomic import atomic_path
from ..utils.modes import EXPORT_FORMATS, TORCHSCRIPT_REMOVED_IN
from ..inference.fold import fold_bn
from ..inference.graphs import MIN_DYNAMIC_SIDE, default_example, dynamic_dims, onnx_program
from ..inference.network import Network

FORMATS = EXPORT_FORMATS
DEFAULT_ATOL = 1e-4
# File name endings and the format they mean; an export never writes one format under another's name.
SUFFIX_FORMATS = {
    ".pt2": "pt2", ".onnx": "onnx", ".xml": "openvino",
    ".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript", ".torchscript": "torchscript",
}
FORMAT_SUFFIX = {"pt2": ".pt2", "onnx": ".onnx", "openvino": ".xml", "torchscript": ".pt"}
TORCHSCRIPT_METADATA = "resnet.json"  # the extra file of a TorchScript archive that holds the metadata
OPENVINO_METADATA = "resnet"  # the IR's rt_info section that holds the metadata


def format_for_path(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The export format: ``fmt`` if given (it must agree with a known file ending), else the ending's."""
    suffix = Path(path).suffix.lower()
    implied = SUFFIX_FORMATS.get(suffix)
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt is not None and implied is not None and implied != fmt:
        raise UsageError(f"{Path(path).name} ends in {suffix}, which means {implied}, but the format asked for is {fmt}; "
                         f"name the file *{FORMAT_SUFFIX[fmt]} or ask for {implied}")
    if fmt is None and implied is None:
        endings = ", ".join(SUFFIX_FORMATS)
        raise UsageError(f"cannot tell the export format from the file name {Path(path).name}; end it in one of {endings}, or name the format")
    return fmt or implied  # type: ignore[return-value]


def export_metadata(model: nn.Module, extra: dict[str, object] | None = None, shape: dict[str, object] | None = None) -> dict[str, str]:
    """String metadata for an exported file: ``resnet`` (the JSON our safetensors files carry: model,
    spec, classes, preprocessing, and ``export``: the graph's input size and dynamic axes) plus flat ``model``, ``classes`` /
    ``mean`` / ``std`` / ``resize`` / ``crop`` (the network's preprocessing) and ``input_size`` (the side the graph
    was exported at), ``dynamic_batch`` / ``dynamic_size`` (``true`` / ``false``) for other tools."""
    from dataclasses import asdict

    meta: dict[str, object] = {"format": "resnet", "version": 1, "model": getattr(model, "model_name", None)}
    spec = getattr(model, "spec", None)
    if spec is not None:
        meta["spec"] = {k: v for k, v in asdict(spec).items() if k != "extra"}
    meta.update(extra or {})
    if shape is not None:
        meta["export"] = shape
    flat = {"resnet": json.dumps(meta, default=str)}
    if meta.get("model"):
        flat["model"] = str(meta["model"])
    if meta.get("classes"):
        flat["classes"] = json.dumps(meta["classes"])
    pre = meta.get("preprocess")
    if isinstance(pre, dict):
        for key in ("mean", "std", "input_size", "resize", "crop"):
            if pre.get(key) is not None:
                flat[key] = json.dumps(pre[key])
    if shape is not None:  # the graph's own size wins over the preprocessing's
        flat["input_size"] = json.dumps(shape["input_size"])
        flat["dynamic_batch"] = json.dumps(shape["dynamic_batch"])
        flat["dynamic_size"] = json.dumps(shape["dynamic_size"])
    return flat


def _shape_metadata(example: Tensor, dynamic_batch: bool, dynamic_size: bool) -> dict[str, object]:
    height, width = example.shape[2:]
    return {"input_size": height if height == width else [height, width], "input_shape": list(example.shape[1:]),
            "dynamic_batch": dynamic_batch, "dynamic_size": dynamic_size}


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_diff: float
    batch_sizes: list[int]
    input_shape: list[int]
    dynamic_batch: bool
    folded_bn: bool
    dynamic_size: bool = False
    checked_shapes: list[list[int]] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path), "format": self.format, "max_abs_diff": self.max_abs_diff, "batch_sizes": self.batch_sizes,
            "input_shape": self.input_shape, "dynamic_batch": self.dynamic_batch, "dynamic_size": self.dynamic_size,
            "checked_shapes": self.checked_shapes, "folded_bn": self.folded_bn, **self.details,
        }


def _prepare(model: nn.Module, fold: bool) -> nn.Module:
    if getattr(model, "features_only", False):
        raise UsageError("cannot export a features_only network (it returns a list of maps); build it with logits")
    return fold_bn(model) if fold else model.eval()


def _example(model: nn.Module, example_input: Tensor | None, dynamic_size: bool) -> Tensor:
    example = default_example(model) if example_input is None else example_input.float()
    if dynamic_size and min(example.shape[2:]) < MIN_DYNAMIC_SIDE:
        raise UsageError(f"a dynamic image size needs an example of at least {MIN_DYNAMIC_SIDE} pixels a side, "
                         f"got {tuple(example.shape[2:])}")
    return example


def _check_batches(example: Tensor, dynamic_batch: bool, dynamic_size: bool = False) -> list[Tensor]:
    """The example, plus one batch of another size (dynamic batch) at another height and width (dynamic size)."""
    gen = torch.Generator().manual_seed(0)
    checks = [example]
    if dynamic_batch or dynamic_size:
        batch = (3 if len(example) != 3 else 1) if dynamic_batch else len(example)
        height, width = example.shape[2:]
        if dynamic_size:  # larger and not square: the two sides are free independently
            height, width = height + max(8, height // 2), width + max(8, width // 4)
        checks.append(torch.randn((batch, example.shape[1], height, width), generator=gen))
    return checks


def _report(target: Path, fmt: str, diff: float, checks: list[Tensor], example: Tensor, dynamic_batch: bool,
            dynamic_size: bool, fold: bool, runtime: str) -> ExportReport:
    return ExportReport(target, fmt, diff, [len(x) for x in checks], list(example.shape), dynamic_batch, fold, dynamic_size,
                        [list(x.shape) for x in checks], {"runtime": runtime})


def _verify(run: Callable[[Tensor], Tensor], model: nn.Module, inputs: list[Tensor], atol: float, what: str) -> float:
    worst = 0.0
    with torch.inference_mode():
        for x in inputs:
            expected = model(x).float()
            shape = "x".join(str(s) for s in x.shape)
            try:
                got = run(x).float()
            except Exception as err:  # runtimes raise their own exception types
                raise ResNetError(f"the exported {what} fails on an input of {shape}: {str(err).strip().splitlines()[0]}") from None
            if got.shape != expected.shape:
                raise ResNetError(f"the exported {what} returns shape {tuple(got.shape)} for an input of {shape}, PyTorch {tuple(expected.shape)}")
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
    dynamic_size: bool = False,
    fold: bool = False,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    metadata: dict[str, object] | None = None,
) -> ExportReport:
    """Export ``model`` to ONNX at ``path`` (input ``input``, output ``logits``) with ``torch.onnx``'s dynamo
    exporter, verified with ONNX Runtime. ``dynamic_size`` leaves the height and width free (fully convolutional
    networks; checked at a second size).

    The file's ``metadata_props`` carry :func:`export_metadata` (class names, preprocessing, architecture, size).
    """
    from ..inference.onnx_runtime import OrtModel

    model = _prepare(model, fold)
    example = _example(model, example_input, dynamic_size)
    program = onnx_program(model, example, dynamic_batch, opset, dynamic_size)
    checks = _check_batches(example, dynamic_batch, dynamic_size)
    target = Path(path)
    with atomic_path(target) as tmp:
        program.save(tmp, external_data=False)
        _set_onnx_metadata(tmp, export_metadata(model, metadata, _shape_metadata(example, dynamic_batch, dynamic_size)))
        runtime = OrtModel(tmp)
        diff = _verify(runtime, model, checks, atol, "ONNX model (ONNX Runtime)")
        del runtime
    return _report(target, "onnx", diff, checks, example, dynamic_batch, dynamic_size, fold, "onnxruntime")


def export_pt2(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    example_input: Tensor | None = None,
    dynamic_batch: bool = True,
    dynamic_size: bool = False,
    fold: bool = False,
    atol: float = DEFAULT_ATOL,
    metadata: dict[str, object] | None = None,
) -> ExportReport:
    """Export ``model`` with ``torch.export`` and compile it ahead of time (AOTInductor, float32) into a ``.pt2``
    package at ``path``, verified by loading the written package back and running it.

    The batch is always dynamic (a package is compiled once for any batch size; ``dynamic_batch`` only adds the
    second-batch check); ``dynamic_size`` leaves the height and width free too. The package's metadata holds
    :func:`export_metadata` and the arithmetic (``fp32``): read it with :func:`read_export_metadata`, run the file
    with :func:`resnet.inference.pytorch.load_package`. Tens of seconds: a C++ compiler runs."""
    from ..inference.pytorch import compile_engine, load_package, save_package

    model = _prepare(model, fold)
    example = _example(model, example_input, dynamic_size)
    checks = _check_batches(example, True, dynamic_size)
    flat = export_metadata(model, metadata, _shape_metadata(example, True, dynamic_size))
    engine = compile_engine(model, "fp32", example=example, metadata=flat, dynamic_size=dynamic_size)
    target = Path(path)
    with atomic_path(target) as tmp:
        save_package(engine, tmp)
        loaded = load_package(tmp)
        diff = _verify(loaded, model, checks, atol, "PyTorch package (AOTInductor)")
        del loaded
    return _report(target, "pt2", diff, checks, example, True, dynamic_size, fold, "aoti_load_package")


def export_openvino(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    example_input: Tensor | None = None,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    fold: bool = False,
    atol: float = DEFAULT_ATOL,
    metadata: dict[str, object] | None = None,
) -> ExportReport:
    """Export ``model`` to OpenVINO IR: ``path`` (``.xml``, the graph) and the ``.bin`` beside it (float32 weights),
    converted from the ``torch.export`` program, verified with OpenVINO's CPU plugin in float32. The IR's
    ``rt_info`` section ``resnet`` holds :func:`export_metadata`. Both files are put in place only once checked."""
    from ..inference.openvino import convert_program, core

    model = _prepare(model, fold)
    example = _example(model, example_input, dynamic_size)
    checks = _check_batches(example, dynamic_batch, dynamic_size)
    dims = dynamic_dims(dynamic_batch, dynamic_size)
    ov_model = convert_program(model, example, dims)
    for key, value in export_metadata(model, metadata, _shape_metadata(example, dynamic_batch, dynamic_size)).items():
        ov_model.set_rt_info(value, [OPENVINO_METADATA, key])
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.stem}.", dir=target.parent))
    try:
        import openvino

        xml = staging / target.name
        openvino.save_model(ov_model, str(xml), compress_to_fp16=False)
        compiled = core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        diff = _verify(lambda x: torch.from_numpy(compiled(x.numpy())[0].copy()), model, checks, atol, "OpenVINO IR")
        del compiled
        os.replace(xml.with_suffix(".bin"), target.with_suffix(".bin"))  # the weights first: the graph names them
        os.replace(xml, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _report(target, "openvino", diff, checks, example, dynamic_batch, dynamic_size, fold, "openvino")


def _torchscript_deprecation(caught: list[warnings.WarningMessage]) -> None:
    """One ``FutureWarning`` for the TorchScript path, naming the ``torch.jit`` deprecations it met (never hidden)."""
    upstream = sorted({str(w.message).split("`")[1] for w in caught if "`torch.jit" in str(w.message)})
    said = f" (PyTorch: {', '.join(upstream)} deprecated in favour of torch.export)" if upstream else ""
    warnings.warn(f"TorchScript export is deprecated{said} and will be removed in resnet {TORCHSCRIPT_REMOVED_IN}; "
                  "export to `format` 'pt2' instead", FutureWarning, stacklevel=3)
    for w in caught:  # anything else the tracer said goes on as it came
        if "`torch.jit" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    example_input: Tensor | None = None,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    fold: bool = False,
    atol: float = DEFAULT_ATOL,
    metadata: dict[str, object] | None = None,
) -> ExportReport:
    """Deprecated (removed in resnet :data:`TORCHSCRIPT_REMOVED_IN`; use :func:`export_pt2`): trace ``model`` to
    TorchScript at ``path``, verified by loading it back with ``torch.jit.load``. Warns ``FutureWarning``.

    The archive holds :func:`export_metadata` as JSON in its extra file ``resnet.json``. A traced ResNet has no
    batch- or size-dependent code, so the file accepts any batch size and image size; ``dynamic_batch`` and
    ``dynamic_size`` check that on a second input.
    """
    model = _prepare(model, fold)
    example = _example(model, example_input, dynamic_size)
    checks = _check_batches(example, dynamic_batch, dynamic_size)
    target = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.inference_mode(False), torch.no_grad():
                traced = torch.jit.trace(model, (example,), check_trace=False)
        except Exception as err:  # noqa: BLE001 - the tracer raises many types
            raise ResNetError(f"TorchScript export failed: {str(err).strip().splitlines()[0]}") from None
        with atomic_path(target) as tmp:
            meta = export_metadata(model, metadata, _shape_metadata(example, dynamic_batch, dynamic_size))
            torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_METADATA: json.dumps(meta)})
            loaded = torch.jit.load(str(tmp), map_location="cpu")
            diff = _verify(loaded, model, checks, atol, "TorchScript model")
    _torchscript_deprecation(caught)
    return _report(target, "torchscript", diff, checks, example, dynamic_batch, dynamic_size, fold, "torch.jit")


def _set_onnx_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def read_export_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata :func:`export` wrote into a ``.pt2``, ONNX, OpenVINO IR or TorchScript file (``{}`` if none)."""
    fmt = format_for_path(path)
    if fmt == "onnx":
        import onnx

        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if fmt == "pt2":
        from ..inference.pytorch import load_package

        return dict(load_package(path).metadata)
    if fmt == "openvino":
        from ..inference.openvino import core

        info = core().read_model(str(path)).get_rt_info()
        return {k: v.astype(str) for k, v in info[OPENVINO_METADATA].items()} if OPENVINO_METADATA in info else {}
    extra = {TORCHSCRIPT_METADATA: ""}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    _torchscript_deprecation(caught)
    return json.loads(extra[TORCHSCRIPT_METADATA]) if extra[TORCHSCRIPT_METADATA] else {}


EXPORTERS = {"pt2": export_pt2, "onnx": export_onnx, "openvino": export_openvino, "torchscript": export_torchscript}


def export(model: nn.Module, path: str | os.PathLike[str], fmt: str | None = None, **kwargs: object) -> ExportReport:
    """Export to ``fmt`` (default: the one ``path``'s ending names, see :func:`format_for_path`)."""
    fmt = format_for_path(path, fmt)
    if kwargs.get("opset") is not None and fmt != "onnx":
        raise UsageError(f"`opset` applies to ONNX only, not {fmt}")
    if fmt != "onnx":
        kwargs.pop("opset", None)
    return EXPORTERS[fmt](model, path, **kwargs)  # type: ignore[operator]


def export_network(member: Network, path: str | os.PathLike[str], fmt: str | None = None, *, input_size: int | None = None,
                   batch: int = 1, **kwargs: object) -> ExportReport:
    """Export a loaded network with what it carries: its classes, preprocessing, origin and run (data set, recipe,
    step) go into the file's metadata; it is checked on a seeded random batch of ``batch`` images of side
    ``input_size`` (default: its crop). ``kwargs`` as :func:`export` (``dynamic_batch``, ``fold``, ``atol``...)."""
    size = input_size or member.preprocess.crop_size
    example = torch.randn(batch, member.preprocess.channels, size, size, generator=torch.Generator().manual_seed(0))
    metadata = {"classes": member.class_names(), "preprocess": member.preprocess.as_dict(), "source_kind": member.kind,
                **{k: member.metadata[k] for k in ("dataset", "recipe", "step") if k in member.metadata}}
    return export(member.model, path, fmt, example_input=example, metadata=metadata, **kwargs)
