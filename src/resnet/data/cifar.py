"""CIFAR-10 and CIFAR-100 from the official python archives, their extracted folders, or PNG folders.

Every pickle is checked against the official MD5 before it is read, and read with the restricted
unpickler of :mod:`resnet.data.safe_pickle`, never with ``pickle.load``.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from ..reference import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD
from ..utils.download import DownloadError, DownloadPolicy, fetch, md5_of
from .folder_arrays import read_image_folder
from .safe_pickle import restricted_loads
from .scan import split_folder

BASE_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class CifarSpec:
    """The official files of one CIFAR variant, with their MD5s, and its normalisation statistics."""

    name: str
    archive: str
    archive_md5: str
    folder: str  # what the archive extracts to
    train_files: tuple[tuple[str, str], ...]
    test_files: tuple[tuple[str, str], ...]
    meta_file: tuple[str, str]
    label_key: str
    names_key: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    url: str

    def files(self, split: str) -> tuple[tuple[str, str], ...]:
        return self.train_files if split == "train" else self.test_files


CIFAR_SPECS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        name="cifar10",
        archive="cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train_files=(
            ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            ("data_batch_4", "634d18415352ddfa80567beed471001a"),
            ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
        ),
        test_files=(("test_batch", "40351d587109b95175f43aff81a1287e"),),
        meta_file=("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        label_key="labels",
        names_key="label_names",
        num_classes=10,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        url=BASE_URL + "cifar-10-python.tar.gz",
    ),
    "cifar100": CifarSpec(
        name="cifar100",
        archive="cifar-100-python.tar.gz",
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train_files=(("train", "16019d7e3df5f24257cddd939b257f8d"),),
        test_files=(("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),),
        meta_file=("meta", "7973b15100ade9c7d40fb424638fde48"),
        label_key="fine_labels",
        names_key="fine_label_names",
        num_classes=100,
        mean=CIFAR100_MEAN,
        std=CIFAR100_STD,
        url=BASE_URL + "cifar-100-python.tar.gz",
    ),
}

SourceKind = Literal["archive", "extracted", "folder"]


@dataclass(frozen=True)
class CifarSource:
    kind: SourceKind
    path: Path  # the archive file, the extracted folder, or the root holding train/ and test/


@dataclass
class CifarArrays:
    images: Tensor
    labels: Tensor
    classes: list[str]
    skipped: list[tuple[str, str]]


def locate_cifar(
    spec: CifarSpec, data_dir: str | Path | None, *, download_to: Path, allow_download: bool
) -> CifarSource:
    """Find a local copy under the forms ``load_arrays`` accepts, else download one (if allowed)."""
    places = [Path(data_dir).expanduser()] if data_dir is not None else [download_to]
    for place in places:
        found = _recognise(spec, place)
        if found is not None:
            return found
    if data_dir is not None and Path(data_dir).is_file():
        raise DataError(
            f"{data_dir} is not a CIFAR archive; pass {spec.archive}, its extracted {spec.folder}/ "
            "or a folder with train/ and test/"
        )
    target_dir = Path(data_dir).expanduser() if data_dir is not None else download_to
    if not allow_download:
        where = f"in {data_dir}" if data_dir is not None else "(no data folder given)"
        raise DataError(
            f"no {spec.name} data {where}; pass a folder with train/<class>/*.png and test/, "
            f"the archive {spec.archive} (from {spec.url}), or its extracted {spec.folder}/"
        )
    return CifarSource("archive", download_archive(spec.url, target_dir / spec.archive, spec.archive_md5))


def download_archive(url: str, dest: Path, md5: str, policy: DownloadPolicy = DownloadPolicy(timeout=60.0)) -> Path:
    """``url`` into ``dest`` through :func:`resnet.utils.download.fetch` (resumed, retried, kept only with ``md5``);
    a failure is a :class:`DataError`."""
    try:
        return fetch(url, dest, md5=md5, policy=policy,
                     offline=lambda why: f"{why}: cannot download {url}; fetch it by hand into {dest.parent}")
    except DownloadError as err:
        raise DataError(str(err)) from None


def check_md5(actual: str, expected: str, what: str, fix: str) -> None:
    """Refuse data whose checksum differs: it is corrupt, truncated or not the file we think."""
    if actual != expected:
        raise DataError(f"{what} has MD5 {actual}, expected {expected}: it is corrupt or not the official file; {fix}")


def _recognise(spec: CifarSpec, place: Path) -> CifarSource | None:
    if place.is_file():
        return CifarSource("archive", place) if place.name.endswith((".tar.gz", ".tgz", ".tar")) else None
    if not place.is_dir():
        return None
    if (place / spec.meta_file[0]).is_file() and all((place / f).is_file() for f, _ in spec.test_files):
        return CifarSource("extracted", place)
    if (place / spec.folder).is_dir():
        return CifarSource("extracted", place / spec.folder)
    if (place / spec.archive).is_file():
        return CifarSource("archive", place / spec.archive)
    if (place / "train").is_dir() or (place / "test").is_dir():
        return CifarSource("folder", place)
    if (place / spec.name).is_dir():  # e.g. data_dir=/data holding /data/cifar10/{train,test}
        return _recognise(spec, place / spec.name)
    return None


def cache_source(source: CifarSource, split: str) -> Path:
    """What a cache entry depends on: for PNG folders only the split read, else the archive/folder."""
    return split_folder(source.path, split) if source.kind == "folder" else source.path


def read_cifar(spec: CifarSpec, source: CifarSource, split: str, *, strict: bool = False) -> CifarArrays:
    if source.kind == "folder":
        return _read_png_folder(spec, source.path, split, strict)
    if source.kind == "archive":
        check_md5(md5_of(source.path), spec.archive_md5, str(source.path),
                  f"delete it, then fetch {spec.url} again")
        blobs = _read_archive_members(spec, source.path, split)
    else:
        blobs = {}
        for name, md5 in (*spec.files(split), spec.meta_file):
            path = source.path / name
            if not path.is_file():
                raise DataError(f"{path} is missing; extract {spec.archive} again")
            data = path.read_bytes()
            check_md5(hashlib.md5(data, usedforsecurity=False).hexdigest(), md5, str(path), f"extract {spec.archive} again or fetch {spec.url}")
            blobs[name] = data
    return _parse(spec, blobs, split, str(source.path))


def _read_archive_members(spec: CifarSpec, archive: Path, split: str) -> dict[str, bytes]:
    wanted = {f"{spec.folder}/{name}": name for name, _ in (*spec.files(split), spec.meta_file)}
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                short = wanted.get(member.name.lstrip("./"))
                if short is None or not member.isfile():
                    continue
                fh = tar.extractfile(member)
                if fh is not None:
                    blobs[short] = fh.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"cannot read the archive {archive}: {err}; delete it and fetch {spec.url} again") from None
    missing = sorted(set(wanted.values()) - set(blobs))
    if missing:
        raise DataError(
            f"{archive} lacks {spec.folder}/{missing[0]}; it is not the official {spec.archive}, fetch {spec.url} again"
        )
    return blobs


def _parse(spec: CifarSpec, blobs: dict[str, bytes], split: str, where: str) -> CifarArrays:
    meta = _as_str_keys(restricted_loads(blobs[spec.meta_file[0]], source=f"{where}:{spec.meta_file[0]}"), where)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(spec.names_key, [])]
    if len(names) != spec.num_classes:
        raise DataError(
            f"{where}: {spec.meta_file[0]} lists {len(names)} class names, expected {spec.num_classes}; "
            f"fetch {spec.url} again"
        )
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for name, _ in spec.files(split):
        batch = _as_str_keys(restricted_loads(blobs[name], source=f"{where}:{name}"), where)
        data, lab = batch.get("data"), batch.get(spec.label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{where}:{name} holds no uint8 [N, 3072] 'data' array; fetch {spec.url} again")
        lab_array = np.asarray(lab, dtype=np.int64) if lab is not None else np.empty(0, np.int64)
        in_range = len(lab_array) == 0 or (lab_array.min() >= 0 and lab_array.max() < spec.num_classes)
        if lab_array.shape != (len(data),) or not in_range:
            raise DataError(
                f"{where}:{name} needs one label in 0..{spec.num_classes - 1} per image ({len(data)} images, "
                f"{len(lab_array)} labels); fetch {spec.url} again"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab_array)
    return CifarArrays(
        torch.from_numpy(np.concatenate(images)).contiguous(), torch.from_numpy(np.concatenate(labels)), names, []
    )


def _as_str_keys(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"{where} does not hold a CIFAR batch dict; fetch the official archive again")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _read_png_folder(spec: CifarSpec, root: Path, split: str, strict: bool) -> CifarArrays:
    decoded = read_image_folder(split_folder(root, split), channels=3, strict=strict)
    if len(decoded.classes) != spec.num_classes:
        raise DataError(
            f"{root}/{split} has {len(decoded.classes)} class folders, {spec.name} has {spec.num_classes}; "
            "check the data folder"
        )
    if tuple(decoded.images.shape[-2:]) != (32, 32):
        raise DataError(f"{root}/{split} holds {tuple(decoded.images.shape[-2:])} images, {spec.name} images are 32x32")
    return CifarArrays(decoded.images, decoded.labels, decoded.classes, decoded.skipped)
