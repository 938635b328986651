"""Weights shared the Hugging Face way: ``hf-hub:owner/name`` read through ``huggingface_hub``'s cache.

A Hub folder holds ``config.json`` (the architecture and preprocessing), ``model.safetensors`` (the weights)
and ``README.md`` (the model card). Two kinds load:

- ours (``resnet weights publish``): ``config.json`` has a ``resnet`` section, the metadata our checkpoints
  carry (``spec``, ``model``, ``classes``, ``preprocess``, ``dataset``...), beside timm-style keys
  (``architecture``, ``num_classes``, ``label_names``, ``pretrained_cfg``) that other tools read;
- timm's (``timm.models.push_to_hf_hub`` of a ResNet): ``architecture`` names the network (``resnet50`` or
  ``resnet50.a1_in1k``), ``pretrained_cfg`` its preprocessing (``input_size``, ``crop_pct``, ``mean``, ``std``,
  ``interpolation``); its weights are ``model.safetensors``, else ``pytorch_model.bin`` (read safely, no code runs).

Files come from ``huggingface_hub.hf_hub_download``: from the local cache with ``HF_HUB_OFFLINE=1`` (or when
the Hub cannot be reached and the file is cached), downloaded once otherwise. A wrong or missing file is one
:class:`~resnet.errors.CheckpointError` line naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.preprocess import Preprocess
from ..errors import CheckpointError, UsageError

if TYPE_CHECKING:
    from torch import nn

HUB_PREFIX = "hf-hub:"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TIMM_PICKLE_FILE = "pytorch_model.bin"  # timm's older (or extra) weights file, read with weights_only loading
CARD_FILE = "README.md"
LIBRARY_NAME = "resnet"  # the model card's library_name, and the section of config.json with our metadata
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_hub_name(text: object) -> bool:
    """Whether ``text`` names a Hub repository (``hf-hub:owner/name``)."""
    return isinstance(text, str) and text.startswith(HUB_PREFIX)


def repo_id(name: str) -> str:
    """``hf-hub:owner/name`` → ``owner/name`` (checked)."""
    repo = name[len(HUB_PREFIX):] if is_hub_name(name) else name
    if not _REPO_ID.fullmatch(repo) or ".." in repo:
        raise UsageError(f"{name!r} is not a Hub name; write it as {HUB_PREFIX}owner/name (e.g. {HUB_PREFIX}me/resnet20-cifar10)")
    return repo


def hub_file(repo: str, filename: str) -> Path:
    """``filename`` of the Hub repository ``repo``, from the cache or downloaded once; one line when it cannot be had."""
    from huggingface_hub import constants, hf_hub_download, is_offline_mode
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{HUB_PREFIX}{repo}"
    try:
        return Path(hf_hub_download(repo, filename, library_name=LIBRARY_NAME))
    except LocalEntryNotFoundError:
        how = "HF_HUB_OFFLINE=1 is set" if is_offline_mode() else "the Hub cannot be reached"
        raise CheckpointError(f"{filename} of {where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {how}; "
                              f"fetch it once with network (`hf download {repo}`), or copy the cache from a machine that has it") from None
    except EntryNotFoundError:
        raise CheckpointError(f"{where} has no {filename}; a model folder needs {CONFIG_FILE} and {WEIGHTS_FILE} "
                              "(written by `resnet.deploy.publish.publish()` or timm's push_to_hf_hub)") from None
    except (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError):
        raise CheckpointError(f"{where} does not exist on the Hub or is private or gated; check the name, or log in "
                              "(`hf auth login`) if it is yours") from None
    except (HfHubHTTPError, OSError) as err:
        raise CheckpointError(f"cannot fetch {filename} of {where}: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_config(repo: str) -> dict[str, Any]:
    """The parsed ``config.json`` of ``repo``."""
    path = hub_file(repo, CONFIG_FILE)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{CONFIG_FILE} of {HUB_PREFIX}{repo} ({path}) is not valid JSON ({err}); the file is damaged, fetch it again") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{CONFIG_FILE} of {HUB_PREFIX}{repo} ({path}) holds no JSON object; the file is damaged, fetch it again")
    return config


def _weights(repo: str, timm: bool) -> Path:
    if not timm:
        return hub_file(repo, WEIGHTS_FILE)
    try:
        return hub_file(repo, WEIGHTS_FILE)
    except CheckpointError as first:
        try:
            return hub_file(repo, TIMM_PICKLE_FILE)
        except CheckpointError:
            raise first from None


def _load_fitted(model: nn.Module, state: dict[str, Any], origin: str) -> None:
    """``state`` into ``model``; a classifier of another size is left at its initialisation (fine-tuning)."""
    from .store import _load, fit_head

    fitted, _ = fit_head(state, model)
    _load(model, fitted, None, origin)


def timm_preprocess(cfg: dict[str, Any], origin: str) -> Preprocess:
    """timm's ``pretrained_cfg`` as a :class:`Preprocess`: crop ``input_size``, resize ``crop / crop_pct`` (what timm's
    ``resolve_data_config`` gives by default; its ``test_input_size`` is an opt-in there, and is here too: not used)."""
    try:
        side = int(cfg["input_size"][-1])
        crop_pct = float(cfg.get("crop_pct", 0.875))
        interpolation = str(cfg.get("interpolation", "bilinear"))
        return Preprocess(tuple(cfg["mean"]), tuple(cfg["std"]), side, resize=int(side / crop_pct + 0.5), crop=side,
                          interpolation=interpolation if interpolation in ("bilinear", "bicubic") else "bilinear")
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as err:
        raise CheckpointError(f"{origin}: its pretrained_cfg has no usable preprocessing ({err}); "
                              "it needs input_size, mean, std (and crop_pct)") from None


def _timm_model(repo: str, config: dict[str, Any], pretrained: bool, overrides: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    from ..models.interop import convert_state_dict, read_state_dict
    from ..models.registry import create_model

    origin = f"{CONFIG_FILE} of {HUB_PREFIX}{repo}"
    arch = str(config["architecture"]).split(".")[0]
    cfg = config.get("pretrained_cfg") if isinstance(config.get("pretrained_cfg"), dict) else {}
    num_classes = int(config.get("num_classes") or cfg.get("num_classes") or 1000)
    in_chans = int((config.get("model_args") or {}).get("in_chans", cfg.get("input_size", (3,))[0]))
    try:
        model = create_model(arch, **{"num_classes": num_classes, "in_chans": in_chans, **overrides})
    except ValueError as err:
        raise CheckpointError(f"{origin} names timm's {config['architecture']!r}, which is not a ResNet this library "
                              f"builds ({_first_line(err)})") from None
    labels = config.get("label_names") or cfg.get("label_names")
    meta = {"model": arch, "kind": "timm", "preprocess": timm_preprocess(cfg, origin).as_dict(),
            "classes": list(labels) if isinstance(labels, (list, tuple)) else None, "hub": f"{HUB_PREFIX}{repo}"}
    if pretrained:
        weights = _weights(repo, timm=True)
        state, _ = read_state_dict(weights)
        _load_fitted(model, convert_state_dict(state, "torchvision"), f"{HUB_PREFIX}{repo} ({weights.name})")
        meta["file"] = str(weights)
    return model, meta


def _our_model(repo: str, config: dict[str, Any], pretrained: bool, overrides: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    from ..models.interop import model_from_checkpoint, model_from_metadata, read_state_dict

    meta = dict(config[LIBRARY_NAME]) if isinstance(config[LIBRARY_NAME], dict) else {}
    origin = f"{CONFIG_FILE} of {HUB_PREFIX}{repo}"
    if "spec" not in meta:
        raise CheckpointError(f"{origin}: its `{LIBRARY_NAME}` section has no spec; publish the folder again")
    meta["hub"], meta["kind"] = f"{HUB_PREFIX}{repo}", "resnet"
    if not pretrained:
        return model_from_metadata(meta, origin, overrides), meta
    weights = _weights(repo, timm=False)
    if not overrides:
        model, _ = model_from_checkpoint(weights, metadata=meta)
    else:  # e.g. another num_classes for fine-tuning: the classifier keeps its initialisation
        model = model_from_metadata(meta, origin, overrides)
        _load_fitted(model, read_state_dict(weights)[0], f"{HUB_PREFIX}{repo} ({weights.name})")
    meta["file"] = str(weights)
    return model, meta


def hub_model(name: str, pretrained: bool = True, **overrides: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The network ``hf-hub:owner/name`` holds (our published folders, or timm's ResNets), with its weights when
    ``pretrained``, and its metadata (``preprocess``, ``classes``, ``model``, ``kind``, ``hub``, ``file``).
    ``model.preprocess`` says what input it expects."""
    repo = repo_id(name)
    config = read_config(repo)
    if LIBRARY_NAME in config:
        model, meta = _our_model(repo, config, pretrained, overrides)
    elif "architecture" in config:
        model, meta = _timm_model(repo, config, pretrained, overrides)
    else:
        raise CheckpointError(f"{CONFIG_FILE} of {HUB_PREFIX}{repo} has neither a `{LIBRARY_NAME}` section (ours) nor an "
                              "`architecture` (timm's); it is not a ResNet folder this library reads")
    model.preprocess = Preprocess.from_dict(meta["preprocess"], f"{HUB_PREFIX}{repo}") if meta.get("preprocess") else None
    model.pretrained = f"{HUB_PREFIX}{repo}" if pretrained else None
    return model, meta
