"""CIFAR readers against small fake archives built here: parsing, checksums, the restricted unpickler, download."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet.data import CIFAR_SPECS, load_arrays
from resnet.data.cifar import download_archive as download
from resnet.utils.download import DownloadPolicy
from resnet.data.safe_pickle import restricted_loads
from resnet.errors import DataError, UsageError

N = 7  # images per fake batch


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _py2_style(blob: bytes) -> bytes:
    # The official files name numpy's reconstructor by its numpy-1 module; protocol-2 GLOBAL
    # opcodes are newline-terminated text, so the rename keeps the pickle valid.
    return blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def _batch(rng: np.random.Generator, label_key: bytes, num_classes: int) -> dict[bytes, object]:
    return {
        b"batch_label": b"fake batch",
        label_key: rng.integers(0, num_classes, N).tolist(),
        b"data": rng.integers(0, 256, (N, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(N)],
    }


def make_cifar10(root: Path, seed: int = 0) -> tuple[Path, dict[str, dict[bytes, object]]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": _batch(rng, b"labels", 10) for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, b"labels", 10)
    for name, batch in batches.items():
        blob = _py2_style(pickle.dumps(batch, protocol=2))
        assert b"cnumpy.core.multiarray\n_reconstruct\n" in blob
        (folder / name).write_bytes(blob)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    meta = {b"label_names": [n.encode() for n in names], b"num_cases_per_batch": N, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(_py2_style(pickle.dumps(meta, protocol=2)))
    return folder, batches


def make_cifar100(root: Path, seed: int = 1) -> tuple[Path, dict[str, dict[bytes, object]]]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name in ("train", "test"):
        batch = _batch(rng, b"fine_labels", 100)
        batch[b"coarse_labels"] = rng.integers(0, 20, N).tolist()
        batches[name] = batch
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    meta = {b"fine_label_names": [f"class{i:03d}".encode() for i in range(100)],
            b"coarse_label_names": [f"super{i:02d}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=4))
    return folder, batches


def make_archive(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def trust(
    monkeypatch: pytest.MonkeyPatch, name: str, folder: Path, archive: Path | None = None, url: str | None = None
) -> None:
    """Make the fake files the 'official' ones by putting their MD5s into the spec table."""
    spec = CIFAR_SPECS[name]
    changes: dict[str, object] = {
        "train_files": tuple((f, _md5(folder / f)) for f, _ in spec.train_files),
        "test_files": tuple((f, _md5(folder / f)) for f, _ in spec.test_files),
        "meta_file": (spec.meta_file[0], _md5(folder / spec.meta_file[0])),
    }
    if archive is not None:
        changes["archive_md5"] = _md5(archive)
    if url is not None:
        changes["url"] = url
    monkeypatch.setitem(CIFAR_SPECS, name, dataclasses.replace(spec, **changes))


def expected(
    batches: dict[str, dict[bytes, object]], names: list[str], label_key: bytes
) -> tuple[np.ndarray, list[int]]:
    data = np.concatenate([batches[n][b"data"] for n in names])  # type: ignore[list-item]
    labels = [label for n in names for label in batches[n][label_key]]  # type: ignore[attr-defined]
    return data, labels


def check_pixels(images: torch.Tensor, rows: np.ndarray) -> None:
    """Rows are 1024 red, then green, then blue values, each plane row-major (the CIFAR file layout)."""
    assert images.dtype == torch.uint8 and tuple(images.shape) == (len(rows), 3, 32, 32)
    rng = np.random.default_rng(5)
    for _ in range(50):
        i, c, y, x = int(rng.integers(len(rows))), int(rng.integers(3)), int(rng.integers(32)), int(rng.integers(32))
        assert int(images[i, c, y, x]) == int(rows[i, c * 1024 + y * 32 + x])


@pytest.mark.parametrize("form", ["archive", "extracted", "parent"])
def test_cifar10_fake_parses_to_official_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    folder, batches = make_cifar10(tmp_path / "src")
    archive = make_archive(folder, tmp_path / "src" / "cifar-10-python.tar.gz")
    trust(monkeypatch, "cifar10", folder, archive)
    data_dir = {"archive": archive, "extracted": folder, "parent": tmp_path / "src"}[form]
    train = load_arrays("cifar10", "train", data_dir, cache_dir=tmp_path / "cache")
    data, labels = expected(batches, [f"data_batch_{i}" for i in range(1, 6)], b"labels")
    check_pixels(train.images, data)
    assert train.labels.tolist() == labels and train.labels.dtype == torch.int64
    assert train.classes[:3] == ["airplane", "automobile", "bird"] and train.num_classes == 10
    assert train.mean == (0.4914, 0.4822, 0.4465) and train.std == (0.2470, 0.2435, 0.2616)
    test = load_arrays("cifar10", "test", data_dir, cache_dir=tmp_path / "cache")
    data, labels = expected(batches, ["test_batch"], b"labels")
    check_pixels(test.images, data)
    assert test.labels.tolist() == labels


@pytest.mark.parametrize("form", ["archive", "extracted"])
def test_cifar100_fake_uses_fine_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    folder, batches = make_cifar100(tmp_path / "src")
    archive = make_archive(folder, tmp_path / "src" / "cifar-100-python.tar.gz")
    trust(monkeypatch, "cifar100", folder, archive)
    ds = load_arrays("cifar100", "test", archive if form == "archive" else folder, cache_dir=tmp_path / "cache")
    data, labels = expected(batches, ["test"], b"fine_labels")
    check_pixels(ds.images, data)
    assert ds.labels.tolist() == labels
    assert ds.classes[7] == "class007" and ds.num_classes == 100
    assert ds.mean == (0.5071, 0.4865, 0.4409) and ds.std == (0.2673, 0.2564, 0.2762)


def test_wrong_archive_checksum_is_refused(tmp_path: Path) -> None:
    folder, _ = make_cifar10(tmp_path / "src")
    archive = make_archive(folder, tmp_path / "cifar-10-python.tar.gz")  # not the official file: MD5 differs
    with pytest.raises(DataError, match=r"MD5 .*expected c58f30108f718f92721af3b95e74349a.*fetch"):
        load_arrays("cifar10", "train", archive, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "arrays").exists() or not any((tmp_path / "cache" / "arrays").iterdir())


def test_tampered_extracted_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = make_cifar10(tmp_path / "src")
    trust(monkeypatch, "cifar10", folder)
    blob = bytearray((folder / "test_batch").read_bytes())
    blob[-100] ^= 0xFF
    (folder / "test_batch").write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"test_batch has MD5"):
        load_arrays("cifar10", "test", folder, cache_dir=tmp_path / "cache")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))  # unpickling with pickle.load creates the marker file


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    witness = tmp_path / "witness"
    pickle.loads(pickle.dumps(_Evil(witness), protocol=2))
    assert witness.exists(), "the evil pickle must really run code under plain pickle"
    marker = tmp_path / "marker"
    for protocol in (2, 4):
        blob = pickle.dumps({b"data": _Evil(marker), b"labels": [1]}, protocol=protocol)
        with pytest.raises(DataError, match="not allowed"):
            restricted_loads(blob, source="evil")
    assert not marker.exists()


def test_restricted_unpickler_refuses_object_arrays_and_odd_codecs() -> None:
    with pytest.raises(DataError, match="object arrays"):
        restricted_loads(pickle.dumps(np.array([1, "x"], dtype=object), protocol=2))
    blob = pickle.dumps(b"\x01\x02", protocol=2).replace(b"latin1", b"rot_13")
    with pytest.raises(DataError, match="not allowed"):
        restricted_loads(blob)


def test_evil_batch_with_matching_checksum_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = make_cifar10(tmp_path / "src")
    marker = tmp_path / "marker"
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2))
    trust(monkeypatch, "cifar10", folder)  # the checksum passes: only the unpickler stands in the way
    with pytest.raises(DataError, match="refused"):
        load_arrays("cifar10", "test", folder, cache_dir=tmp_path / "cache")
    assert not marker.exists()


def test_download_verifies_md5_before_keeping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, batches = make_cifar10(tmp_path / "server")
    archive = make_archive(folder, tmp_path / "server" / "cifar-10-python.tar.gz")
    trust(monkeypatch, "cifar10", folder, archive, url=archive.as_uri())  # file:// stands in for the web
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match=r"no cifar10 data .*cifar-10-python.tar.gz \(from file://"):
        load_arrays("cifar10", "test", data_dir, cache_dir=tmp_path / "cache")
    ds = load_arrays("cifar10", "test", data_dir, cache_dir=tmp_path / "cache", download=True)
    assert (data_dir / "cifar-10-python.tar.gz").read_bytes() == archive.read_bytes()
    assert ds.labels.tolist() == list(batches["test_batch"][b"labels"])  # type: ignore[arg-type]


def test_download_with_wrong_md5_keeps_nothing(tmp_path: Path) -> None:
    source = tmp_path / "blob.bin"
    source.write_bytes(b"not the archive")
    target = tmp_path / "out" / "cifar-10-python.tar.gz"
    with pytest.raises(DataError, match=r"MD5 .*run again to fetch it again"):
        download(source.as_uri(), target, "c58f30108f718f92721af3b95e74349a")
    assert not target.exists() and list(target.parent.iterdir()) == []
    kept = download(source.as_uri(), target, hashlib.md5(b"not the archive").hexdigest())
    assert kept.read_bytes() == b"not the archive"


def test_archive_download_is_resumed_from_a_loopback_server(tmp_path: Path) -> None:
    """The CIFAR archive goes through the same fetcher as the weights: a cut connection is resumed with a Range
    request, and only the file with the published MD5 is kept."""
    from weights_helpers import Files, serve

    blob = bytes(range(256)) * 64
    files = Files(blobs={"/cifar-10-python.tar.gz": blob}, truncate_once={"/cifar-10-python.tar.gz"})
    srv, base = serve(files)
    try:
        target = tmp_path / "data" / "cifar-10-python.tar.gz"
        fast = DownloadPolicy(timeout=5.0, retries=2, backoff=0.0, progress=False)
        kept = download(f"{base}/cifar-10-python.tar.gz", target, hashlib.md5(blob).hexdigest(), fast)
        assert kept.read_bytes() == blob
        assert files.requests[0][1] is None and files.requests[1][1] == f"bytes={len(blob) // 2}-"
        with pytest.raises(DataError, match="HTTP 404"):
            download(f"{base}/nothing.tar.gz", tmp_path / "data" / "nothing.tar.gz", "0" * 32, fast)
    finally:
        srv.shutdown()
        srv.server_close()


def test_missing_or_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown data set 'mnist'"):
        load_arrays("mnist")
    with pytest.raises(UsageError, match="holdout_split"):
        load_arrays("cifar10", "val", tmp_path)
    with pytest.raises(DataError, match="no cifar10 data"):
        load_arrays("cifar10", "train", tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(UsageError, match="needs data_dir"):
        load_arrays("folder", "train")
