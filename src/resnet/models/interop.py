"""Reading weights safely and mapping other projects' checkpoints onto our layer names.

Sources understood by :func:`load_pretrained`:

- ``"resnet"``: our own safetensors files (architecture and preprocessing in the metadata);
- ``"torchvision"`` and ``"timm"``: their ResNet / ResNeXt / Wide ResNet state_dicts, whose
  names are ours already;
- ``"akamaster"``: the popular CIFAR ResNet checkpoints (``module.`` prefix, ``linear`` head);
- ``"auto"``: decided from the keys.

Nothing is ever unpickled beyond tensors and plain containers: ``.pt``/``.pth``/``.th`` files go
through ``torch.load(weights_only=True)``, which refuses pickles that would construct arbitrary
objects or run code.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from ..errors import CheckpointError, WrongFileKind
from ..utils.atomic import atomic_write_bytes
from ..utils.file_warnings import naming_file
from ..utils.filekind import DESCRIPTIONS, IMAGE, ONNX, TORCHSCRIPT, ZIP, file_kind
from ..utils.modes import ORIGINS

if TYPE_CHECKING:
    from .specs import ModelSpec

METADATA_KEY = "resnet"
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "model_ema", "state_dict_ema", "net", "weights")


def read_state_dict(path: str | os.PathLike[str], model_name: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read tensors from ``path`` without running any code; return (state_dict, metadata).

    ``metadata`` is our safetensors metadata (parsed JSON) when present, else ``{}`` (or the
    non-tensor entries of a wrapped ``.pth`` file, e.g. ``best_prec1``). ``model_name``, when known, widens
    the size budget of a zip-format file to what that network's weights may take (:func:`check_zip_sizes`).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist; check the path")
    if p.is_dir():
        for candidate in ("best.safetensors", "last.safetensors", "model.safetensors"):
            if (p / candidate).exists():
                return read_state_dict(p / candidate)
        raise CheckpointError(f"{p} is a folder with no best/last/model.safetensors in it; pass a weights file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {p} is empty (0 bytes); it was probably cut off while being written, use another copy")
    refuse_other_kinds(p)
    with open(p, "rb") as fh:
        head = fh.read(8)
    if _looks_like_safetensors(p, head):
        return _read_safetensors(p)
    return _read_torch(p, model_name)


# A zip written by torch.save stores its tensors uncompressed: it inflates to about its own size. Allowed: twice the
# file, or BYTES_PER_PARAMETER bytes per parameter of the network (float64, or float32 weights with optimizer and
# EMA copies), plus ZIP_SLACK for the pickle and small records.
BYTES_PER_PARAMETER = 16
ZIP_SLACK = 16 << 20


def architecture_bytes(model_name: str | None) -> int:
    """The most bytes a checkpoint of ``model_name`` plausibly holds (0 when the name is unknown)."""
    if not model_name:
        return 0
    from .complexity import count_params
    from .registry import create_model

    try:
        with torch.device("meta"):  # shapes only
            return BYTES_PER_PARAMETER * count_params(create_model(model_name))
    except (ValueError, TypeError, RuntimeError):
        return 0


def check_zip_sizes(p: Path, model_name: str | None = None) -> None:
    """Refuse a zip-format checkpoint whose members declare more bytes than the budget, before anything is
    inflated (a decompression bomb: a few MB that would inflate to many GB)."""
    if not zipfile.is_zipfile(p):
        return
    size = p.stat().st_size
    try:
        with zipfile.ZipFile(p) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise CheckpointError(f"cannot read checkpoint {p}: its zip directory is damaged ({_short(err)}); use another copy") from None
    arch = architecture_bytes(model_name)
    budget = max(2 * size, arch) + ZIP_SLACK
    if declared > budget:
        basis = f"twice the file or {arch / 1e6:,.0f} MB for {model_name}" if arch else "twice the file"
        raise CheckpointError(
            f"refused to load {p}: its zip members declare {declared / 1e6:,.0f} MB for a {size / 1e6:,.1f} MB file, over "
            f"the budget of {budget / 1e6:,.0f} MB ({basis}); it is a decompression bomb or not a checkpoint, nothing "
            "was inflated"
        )


def refuse_other_kinds(p: Path) -> None:
    """:class:`WrongFileKind` when ``p``'s first bytes say it is no weights file at all (an image, an ONNX or
    TorchScript export, another zip): such files were called corrupt, which sent users after another copy."""
    kind = file_kind(p)
    if kind in (IMAGE, ONNX, TORCHSCRIPT, ZIP):
        raise WrongFileKind(f"{p} is {DESCRIPTIONS[kind]}, not a checkpoint (read by its content)", str(p), kind)


def _looks_like_safetensors(p: Path, head: bytes) -> bool:
    if p.suffix == ".safetensors":
        return True
    # safetensors starts with a little-endian u64 header length followed by '{'.
    if len(head) == 8:
        n = int.from_bytes(head, "little")
        if 0 < n < 100_000_000:
            with open(p, "rb") as fh:
                fh.seek(8)
                return fh.read(1) == b"{"
    return False


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Our metadata of a safetensors file without reading its tensors (``{}`` when it has none or cannot be read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(METADATA_KEY)
        meta = json.loads(raw) if raw else {}
    except (SafetensorError, OSError, ValueError, RuntimeError, RecursionError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _read_safetensors(p: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        from safetensors import safe_open

        with naming_file(p):
            tensors = load_file(str(p), device="cpu")
            with safe_open(str(p), framework="pt") as fh:
                raw = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot read safetensors file {p}: {err} (truncated or corrupt; use another copy)") from None
    meta: dict[str, Any] = {}
    if METADATA_KEY in raw:
        try:
            meta = json.loads(raw[METADATA_KEY])
        except (json.JSONDecodeError, RecursionError):
            raise CheckpointError(f"{p}: its '{METADATA_KEY}' metadata is not valid JSON; the file was altered") from None
        check_metadata(meta, p)
    return tensors, meta


# Types of the metadata fields this package reads; anything else in a file is ignored.
_METADATA_TYPES: dict[str, tuple[type, ...]] = {
    "format": (str,), "version": (int,), "spec": (dict,), "model": (str, type(None)), "classes": (list, type(None)),
    "preprocess": (dict, type(None)), "dataset": (str, type(None)), "step": (int,),
}


def check_metadata(meta: Any, p: Path | str) -> None:
    """Refuse metadata of the wrong shape (a hand-edited or hostile file) with a one-line error."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{p}: its '{METADATA_KEY}' metadata is a JSON {type(meta).__name__}, not an object; the file was altered")
    for key, types in _METADATA_TYPES.items():
        if key in meta and not isinstance(meta[key], types):
            raise CheckpointError(
                f"{p}: its '{key}' metadata is of type {type(meta[key]).__name__}, expected {' or '.join(t.__name__ for t in types)}; "
                "the file was altered, use another copy"
            )
    classes = meta.get("classes")
    if classes is not None and not all(isinstance(c, (str, int)) for c in classes):
        raise CheckpointError(f"{p}: its 'classes' metadata must be a list of names; the file was altered, use another copy")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TORCH_ADVICE = ("Weights only load failed", "(1)", "(2)", "Check the documentation", "Please file an issue")


def unpickling_reason(err: BaseException) -> tuple[str, bool]:
    """(short reason, whether the file asks for code) from ``torch.load(weights_only=True)``'s long message.

    PyTorch's message suggests loading with ``weights_only=False``; that advice is exactly what must not
    be followed for a file of unknown origin, so only the unpickler's own reason is kept.
    """
    reason = ""
    for line in _ANSI.sub("", str(err)).splitlines():
        line = line.strip()
        if "WeightsUnpickler error:" in line:
            line = line.split("WeightsUnpickler error:", 1)[1].strip()
        if line and not line.startswith(_TORCH_ADVICE):
            reason = re.split(r" was not an allowed global|\. Please use", line)[0]
            break
    reason = reason[:200]
    unsafe = re.search(r"global|reduce|build|class|setstate|callable|function", reason, re.I) is not None
    return (reason or type(err).__name__), unsafe


def _short(err: BaseException) -> str:
    """First sentence of an error message, without PyTorch's paragraphs of advice."""
    text = _ANSI.sub("", str(err)).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    cut = first.find(". ")
    return (first[:cut] if cut > 0 else first)[:200]


def _read_torch(p: Path, model_name: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    check_zip_sizes(p, model_name)
    try:
        with naming_file(p) as said:  # PyTorch's warnings about the file name it
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason, unsafe = unpickling_reason(err)
        protocol = re.search(r"pickle protocol (\d+)", " ".join(str(w.message) for w in said))
        if protocol and "Unsupported operand" in reason:
            raise CheckpointError(
                f"refused to load {p}: it was saved with pickle protocol {protocol.group(1)}, which the safe loader "
                f"(torch.load with weights_only=True) cannot read ({reason}); nothing in it was run. Re-save it with "
                "torch.save's default protocol, or as safetensors, in a trusted environment"
            ) from None
        if not unsafe:
            raise CheckpointError(
                f"refused to load {p}: it is not a PyTorch file of tensors, or it is corrupt ({reason}); nothing in it "
                "was run, use another copy"
            ) from None
        raise CheckpointError(
            f"refused to load {p}: it contains Python objects other than tensors ({reason}), and loading it "
            "could run arbitrary code; nothing was run. Use a safetensors copy, or convert it in a trusted environment"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, TypeError,
            IndexError, KeyError, MemoryError, OverflowError, RecursionError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"cannot read checkpoint {p}: it is not an intact PyTorch file ({type(err).__name__}: {_short(err)}); "
            "it is truncated or corrupt, use another copy"
        ) from None
    return _unwrap(obj, p)


def _unwrap(obj: Any, p: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    meta: dict[str, Any] = {}
    for _ in range(3):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}, meta
        if isinstance(obj, Mapping):
            meta.update({k: v for k, v in obj.items() if isinstance(v, (int, float, str, bool))})
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is not None:
                obj = inner
                continue
        break
    raise CheckpointError(f"{p} holds no state_dict of tensors (looked at the top level and {', '.join(_WRAPPER_KEYS)})")


def detect_source(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> str:
    if metadata.get("format") == "resnet":
        return "resnet"
    keys = list(state_dict)
    if any(k.endswith("linear.weight") for k in keys):
        return "akamaster"
    return "torchvision"


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Rename keys of a ``source`` checkpoint to ours."""
    if source not in ORIGINS:
        raise CheckpointError(f"unknown checkpoint origin {source!r}; allowed: {', '.join(ORIGINS)}")
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "_orig_mod.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if source == "akamaster" and key.startswith("linear."):
            key = "fc." + key[len("linear.") :]
        out[key] = value
    return out


def _key(k: object) -> str:
    # Keys come from untrusted files; one with a newline or control character must not break the one-line error.
    text = str(k)
    return text if text.isprintable() else repr(text)


def load_into(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True, origin: str = "checkpoint",
              check_only: bool = False) -> None:
    """``load_state_dict`` with an error that lists mismatched keys and shapes (``check_only``: just the check)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if features_only_head(model):
        unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es): " + "; ".join(shapes[:8]) + (" ..." if len(shapes) > 8 else ""))
        if missing:
            parts.append(f"{len(missing)} missing key(s): " + ", ".join(map(_key, missing[:8])) + (" ..." if len(missing) > 8 else ""))
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): " + ", ".join(map(_key, unexpected[:8])) + (" ..." if len(unexpected) > 8 else ""))
        name = getattr(model, "model_name", type(model).__name__)
        raise CheckpointError(
            f"{origin} does not fit {name}: " + " | ".join(parts) + ". Pick the matching `model` (or `num_classes`)"
        )
    if check_only:
        return
    filtered = {k: v for k, v in state_dict.items() if k in own}
    # num_batches_tracked is absent from some projects' files; it does not affect the forward pass.
    result = model.load_state_dict(filtered, strict=False)
    del result


def features_only_head(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "features_only", False))


def load_pretrained(
    model: torch.nn.Module, path: str | os.PathLike[str], source: str = "auto", *, strict: bool = True
) -> dict[str, Any]:
    """Load weights from ``path`` into ``model`` in place and return the file's metadata.

    ``source`` is one of ``auto``, ``resnet``, ``torchvision``, ``timm``, ``akamaster``.
    Raises :class:`~resnet.errors.CheckpointError` (never a raw traceback) for unreadable,
    unsafe or mismatched files.
    """
    if source not in ORIGINS:
        raise CheckpointError(f"unknown checkpoint origin {source!r}; allowed: {', '.join(ORIGINS)}")
    state_dict, meta = read_state_dict(path)
    if source == "auto":
        source = detect_source(state_dict, meta)
    load_into(model, convert_state_dict(state_dict, source), strict=strict, origin=str(path))
    return meta


def save_weights(model: torch.nn.Module, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``model``'s weights as safetensors, atomically, with our JSON metadata.

    The metadata carries the architecture (``spec``) and preprocessing so that
    :func:`model_from_checkpoint` rebuilds the network without flags.
    """
    from dataclasses import asdict

    meta: dict[str, Any] = {"format": "resnet", "version": 1}
    spec = getattr(model, "spec", None)
    if spec is not None:
        spec_dict = asdict(spec)
        spec_dict.pop("extra", None)
        meta["spec"] = spec_dict
        meta["model"] = getattr(model, "model_name", None)
    if metadata:
        meta.update(metadata)
    module = getattr(model, "module", model)  # unwrap DDP
    module = getattr(module, "_orig_mod", module)  # unwrap torch.compile
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={METADATA_KEY: json.dumps(meta)}))


def spec_from_metadata(meta: Mapping[str, Any], origin: str) -> ModelSpec:
    """The :class:`~resnet.models.specs.ModelSpec` our metadata's ``spec`` describes, checked."""
    from .specs import ModelSpec

    try:
        spec_fields = dict(meta["spec"])
        spec_fields["layers"] = tuple(spec_fields["layers"])
        spec_fields["widths"] = tuple(spec_fields["widths"])
        if "drop_in_blocks" not in spec_fields:  # written before the field existed, when Wide ResNets implied it
            spec_fields["drop_in_blocks"] = spec_fields.get("family") == "wrn"
        spec = ModelSpec(**spec_fields)
        spec.validate()
        # validate() holds each block to its own rule on layers ("pool" stages may hold no residual pair)
        if not all(isinstance(v, int) and v >= 0 for v in spec.layers) or \
                not all(isinstance(v, int) and v > 0 for v in spec.widths):
            raise ValueError(f"layers {spec.layers} must be counts and widths {spec.widths} positive integers")
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise CheckpointError(f"{origin}: its architecture metadata is invalid ({_short(err)}); the file was altered, use another copy") from None
    return spec


def model_from_metadata(meta: Mapping[str, Any], origin: str, overrides: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The network our metadata describes (``spec`` with ``overrides``, ``model`` name), freshly initialised."""
    from .network import ResNet
    from .specs import with_overrides

    spec = spec_from_metadata(meta, origin)
    try:
        spec = with_overrides(spec, **dict(overrides or {}))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{origin}: {_short(err)}") from None
    return ResNet(spec, model_name=meta.get("model") or "resnet")


def model_from_checkpoint(path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild one of our networks from its safetensors checkpoint (architecture in the metadata, or in
    ``metadata`` when given: a Hub folder's ``config.json``)."""
    from .network import ResNet

    state_dict, file_meta = read_state_dict(path)
    meta = dict(metadata) if metadata is not None else file_meta
    if meta.get("format") != "resnet" or "spec" not in meta:
        raise CheckpointError(f"{path} carries no architecture; name the network with `model`")
    spec = spec_from_metadata(meta, str(path))
    try:
        # Every block holds weight tensors of its own, so a file with fewer tensors than the metadata
        # claims blocks is altered; refusing here keeps a hostile file from building a giant network.
        if sum(spec.layers) > len(state_dict):
            raise ValueError(f"{sum(spec.layers)} blocks claimed, but the file holds only {len(state_dict)} tensors")
        with torch.device("meta"):  # shapes only: nothing allocated until they match the file
            shapes = ResNet(spec, model_name=meta.get("model") or "the network its metadata describes")
            load_into(shapes, state_dict, origin=str(path), check_only=True)
    except (TypeError, ValueError, KeyError, RuntimeError, OverflowError) as err:
        raise CheckpointError(f"{path}: its architecture metadata is invalid ({_short(err)}); the file was altered, use another copy") from None
    model = ResNet(spec, model_name=meta.get("model") or "resnet")
    load_into(model, state_dict, origin=str(path))
    return model, meta
