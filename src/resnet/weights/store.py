"""The weights cache: where files live, getting them there, checking them, and loading them safely.

One cache: ``$RESNET_HOME/weights`` (default ``$XDG_CACHE_HOME/resnet``, else ``~/.cache/resnet``).
A torchvision file already in ``$TORCH_HOME/hub/checkpoints`` is used from there instead of being
fetched again. Hugging Face files come through ``huggingface_hub`` (which honours ``HF_ENDPOINT``
and ``HF_HUB_OFFLINE``) into the same cache. ``RESNET_WEIGHTS_MIRROR`` replaces the host of every
direct URL (a company mirror; the tests' loopback server).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import CheckpointError
from ..utils.atomic import atomic_path
from . import manifest
from ..utils.download import (DownloadError, DownloadPolicy, OfflineError, fetch, offline_mode, reachable, sha256_of,
                               unreachable_reason)
from .home import hub_endpoint, mirror, split_name, torch_hub_dir, weights_dir
from .registry import WeightEntry, find


def cache_path(entry: WeightEntry) -> Path:
    base = weights_dir()
    if entry.hf_hub_id:
        return base / "hf" / entry.hf_hub_id.replace("/", "--") / entry.filename
    return base / entry.publisher / entry.filename


def download_url(entry: WeightEntry) -> str:
    base = mirror()
    if base and not entry.hf_hub_id:
        return base + "/" + entry.filename
    return entry.url


def _torch_home_copy(entry: WeightEntry) -> Path | None:
    if entry.publisher != "torchvision":
        return None
    try:
        candidate = torch_hub_dir() / "checkpoints" / entry.filename
    except (RuntimeError, OSError):
        return None
    return candidate if candidate.is_file() else None


def locate(entry: WeightEntry) -> Path | None:
    """The file of ``entry`` when it is on this machine (our cache, or torchvision's under ``TORCH_HOME``)."""
    own = cache_path(entry)
    if own.is_file():
        return own
    return _torch_home_copy(entry)


def check_hash(entry: WeightEntry, path: Path, fix: str | None = None, *, fresh: bool = False) -> str:
    """The full sha256 of ``path``, refused unless it is the one the manifest holds for ``entry`` (unless ``fresh``: a
    new download) and starts with the published prefix."""
    full = sha256_of(path)
    fix = fix or f"delete it and download again (`resnet.weights.download('{entry.name}')`)"
    known = None if fresh else manifest.lookup(weights_dir(), entry.name, entry.filename)
    if known is not None and full != known["sha256"]:
        how = "the Hugging Face hub publishes" if known["basis"] == manifest.PUBLISHED else "recorded when it was first fetched"
        raise CheckpointError(f"{path} does not have the sha256 {how} for {entry.name} ({known['sha256'][:16]}..., it has "
                              f"{full[:16]}...): it is corrupt or was replaced; {fix}")
    if entry.sha256_prefix and not full.startswith(entry.sha256_prefix):
        raise CheckpointError(f"{path} does not have the sha256 published for {entry.name} ({entry.sha256_prefix}...): it "
                              f"is corrupt or another file; {fix}")
    return full


def hub_sha256(entry: WeightEntry) -> str | None:
    """The full sha256 the Hugging Face hub publishes for ``entry``'s file; ``None`` offline or out of reach."""
    if not entry.hf_hub_id or offline_mode():
        return None
    from huggingface_hub import HfApi

    try:
        infos = HfApi().get_paths_info(entry.hf_hub_id, [entry.filename])
    except (OSError, ValueError, RuntimeError):  # huggingface_hub's HTTP and connection errors are OSErrors
        return None
    for info in infos:
        sha = getattr(getattr(info, "lfs", None), "sha256", None)
        if getattr(info, "path", None) == entry.filename and isinstance(sha, str) and len(sha) == 64:
            return sha.lower()
    return None


def verify(entry: WeightEntry, path: Path, *, fresh: bool = False, fix: str | None = None, ask_hub: bool = True) -> str:
    """Check ``path`` as ``entry``'s file: its full sha256 where one is known (published by the hub, or recorded),
    else the published prefix; the first time, the full sha256 goes into the manifest. Returns what was checked:
    ``"published"``, ``"recorded"`` (:mod:`resnet.weights.manifest`), ``"prefix"`` (a read-only cache: nothing
    recorded) or ``"none"`` (nothing to check against). ``ask_hub=False``: a hub file not yet in the manifest is
    not looked up (loading a cached file never waits on the network; downloads and ``weights verify`` look it up)."""
    fix = fix or f"delete it and download again (`resnet.weights.download('{entry.name}')`)"
    full = check_hash(entry, path, fix, fresh=fresh)
    known = None if fresh else manifest.lookup(weights_dir(), entry.name, entry.filename)
    if known is not None:
        return str(known["basis"])
    published = hub_sha256(entry) if ask_hub else None
    if published is not None:
        if full != published:
            raise CheckpointError(f"{path} does not have the sha256 the Hugging Face hub publishes for {entry.name} "
                                  f"({published[:16]}..., it has {full[:16]}...): it is corrupt or another file; {fix}")
        return _record(entry, path, full, manifest.PUBLISHED, otherwise=manifest.PUBLISHED)
    if entry.sha256_prefix:
        return _record(entry, path, full, manifest.RECORDED, otherwise="prefix")
    return "none"


def _record(entry: WeightEntry, path: Path, full: str, basis: str, *, otherwise: str) -> str:
    """Record ``full`` in the manifest; a cache that cannot be written (read-only) keeps working, checked as before
    (``otherwise``: what was checked then)."""
    try:
        manifest.record(weights_dir(), entry.name, entry.filename, path, full, basis)
    except OSError:
        return otherwise
    return basis


def ensure(entry: WeightEntry, policy: DownloadPolicy = DownloadPolicy()) -> Path:
    """The checked local file of ``entry``, downloaded first when absent (:func:`verify`: full sha256 where known)."""
    found = locate(entry)
    if found is not None:
        verify(entry, found, ask_hub=False)
        return found
    dest = cache_path(entry)
    if entry.hf_hub_id:
        got = _fetch_hf(entry, dest)
    else:
        url = download_url(entry)
        got = fetch(url, dest, sha256_prefix=entry.sha256_prefix, policy=policy,
                    offline=lambda why: offline_message(url, entry.filename, entry.name, why),
                    elsewhere=f"check RESNET_WEIGHTS_MIRROR, or import the file: `resnet.weights.import_file('FILE', '{entry.name}')`")
    try:
        verify(entry, got, fresh=True, fix="so it was deleted; try again, or check the mirror")
    except CheckpointError as err:
        got.unlink(missing_ok=True)
        raise DownloadError(str(err)) from None
    return got


def offline_message(url: str, filename: str, name: str, why: str) -> str:
    return (f"{why}: cannot fetch {url}; on a connected machine download {filename} from that URL, copy it here and "
            f"import it: `resnet.weights.import_file('{filename}', '{name}')`")


def _fetch_hf(entry: WeightEntry, dest: Path) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    assert entry.hf_hub_id is not None
    endpoint = hub_endpoint()
    offline = offline_mode() or not reachable(endpoint)  # no network: the hub's cache only, as HF_HUB_OFFLINE would
    try:
        got = Path(hf_hub_download(entry.hf_hub_id, entry.filename, local_dir=dest.parent, local_files_only=offline))
    except LocalEntryNotFoundError as err:
        why = ("offline (HF_HUB_OFFLINE is set)" if offline_mode() or not offline and "offline" in str(err).lower()
               else unreachable_reason(endpoint) if offline else "no network")
        raise OfflineError(offline_message(entry.url, entry.filename, entry.name, why)) from None
    except (EntryNotFoundError, RepositoryNotFoundError) as err:
        raise DownloadError(f"{entry.hf_hub_id}/{entry.filename} is not on the Hugging Face hub ({type(err).__name__}); "
                            f"import the file: `resnet.weights.import_file('FILE', '{entry.name}')`") from None
    except (HfHubHTTPError, OSError) as err:
        raise DownloadError(f"cannot download {entry.hf_hub_id}/{entry.filename}: {str(err).splitlines()[0][:200]}") from None
    return got


def import_file(src: str | os.PathLike[str], entry: WeightEntry | str) -> Path:
    """Copy a file fetched elsewhere into the cache as ``entry`` (or the named weights ``NAME:TAG``), after checking
    its hash and that it loads."""
    if isinstance(entry, str):
        entry = find(*split_name(entry))
    path = Path(src)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file; pass the downloaded weights file")
    full = check_hash(entry, path, f"import {entry.filename}, the file published at {entry.url}")
    from ..models import create_model

    probe = create_model(entry.model, num_classes=entry.num_classes or 1000)
    state, _ = read_for(entry, path)
    fitted, _ = fit_head(state, probe)
    _load(probe, fitted, entry, path, check_only=True)
    dest = cache_path(entry)
    with atomic_path(dest) as tmp:
        shutil.copyfile(path, tmp)
    if manifest.lookup(weights_dir(), entry.name, entry.filename) is None:
        published = hub_sha256(entry)
        if published is not None and published != full:
            dest.unlink()
            raise CheckpointError(f"{path} does not have the sha256 the Hugging Face hub publishes for {entry.name} "
                                  f"({published[:16]}...): it is corrupt or another file; nothing was imported")
        _record(entry, dest, full, manifest.PUBLISHED if published else manifest.RECORDED, otherwise="prefix")
    return dest


def read_for(entry: WeightEntry, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors of ``path`` renamed to ours, read without running code (:func:`resnet.models.interop.read_state_dict`)."""
    from ..models.interop import convert_state_dict, read_state_dict

    state, meta = read_state_dict(path, entry.model)
    return convert_state_dict(state, "akamaster" if entry.publisher == "akamaster" else "torchvision"), meta


def fit_head(state: Mapping[str, torch.Tensor], model: nn.Module) -> tuple[dict[str, torch.Tensor], bool]:
    """Drop the classifier of ``state`` when its shape differs from ``model``'s; returns (state, dropped)."""
    own = model.state_dict()
    head = {k for k in state if k.startswith("fc.")}
    differs = any(k in own and tuple(own[k].shape) != tuple(state[k].shape) for k in head)
    if not differs:
        return dict(state), False
    return {k: v for k, v in state.items() if k not in head}, True


def _load(model: nn.Module, state: Mapping[str, torch.Tensor], entry: WeightEntry | None, origin: Path | str,
          *, check_only: bool = False) -> None:
    from ..models.interop import load_into

    headless = not any(k.startswith("fc.") for k in state)
    body = {k: v for k, v in state.items()}
    if headless:  # a backbone (or a dropped head): the classifier keeps its initialisation
        body.update({k: v for k, v in model.state_dict().items() if k.startswith("fc.")})
    label = f"{entry.name} ({origin})" if entry is not None else str(origin)
    load_into(model, body, origin=label, check_only=check_only)


@dataclass(frozen=True)
class Loaded:
    """What loading named weights into a network did."""

    entry: WeightEntry
    path: Path
    head_replaced: bool


def load_entry(model: nn.Module, entry: WeightEntry, policy: DownloadPolicy = DownloadPolicy()) -> Loaded:
    """Fetch (if needed), check and load ``entry`` into ``model``; a classifier of another size is left as is."""
    path = ensure(entry, policy)
    state, _ = read_for(entry, path)
    fitted, dropped = fit_head(state, model)
    _load(model, fitted, entry, path)
    model.preprocess = entry.preprocess  # type: ignore[assignment]
    model.pretrained = entry.name  # type: ignore[assignment]
    return Loaded(entry, path, dropped or entry.num_classes == 0)


def verify_cached(entries: list[WeightEntry]) -> list[tuple[WeightEntry, Path, str]]:
    """(entry, file, what was verified) for every entry present on this machine: ``"published"`` / ``"recorded"``
    (the full sha256), ``"none"``, or the one-line reason the file was refused (it begins with the file's path)."""
    out = []
    for entry in entries:
        path = locate(entry)
        if path is None:
            continue
        try:
            status = verify(entry, path)
        except CheckpointError as err:
            status = str(err)
        out.append((entry, path, status))
    return out


def verification(entry: WeightEntry) -> str:
    """What a file of ``entry`` is held to, without reading it: ``"published"`` / ``"recorded"`` (a full sha256 in the
    manifest), ``"hub"`` (the hub's full sha256, checked at download), ``"prefix"`` (the published prefix until the
    first download or import records the full sha256) or ``"none"``."""
    known = manifest.lookup(weights_dir(), entry.name, entry.filename)
    if known is not None:
        return str(known["basis"])
    return "hub" if entry.hf_hub_id else "prefix" if entry.sha256_prefix else "none"
