"""load_arrays on image folders, and the decode-once cache: hits, invalidation, skipping."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnet.data.load as load_module
from resnet.data import DataWarning, load_arrays
from resnet.errors import DataError


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_tree(
    root: Path, mode: str = "RGB", size: int = 6, per_class: int = 3, names: str = "index"
) -> dict[str, np.ndarray]:
    """train/ and test/ with classes a, b; files named by a global index (``names='index'``) or by letters."""
    rng = np.random.default_rng(0)
    written: dict[str, np.ndarray] = {}
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    index = 0
    for split in ("train", "test"):
        for cls in ("b", "a"):
            for k in range(per_class):
                array = rng.integers(0, 256, shape, dtype=np.uint8)
                name = f"{index:05d}.png" if names == "index" else f"{cls}{'xyz'[k]}.png"
                write_png(root / split / cls / name, array)
                written[f"{split}/{cls}/{name}"] = array
                index += 1
    return written


def test_folder_loads_in_index_order_with_train_stats(tmp_path: Path) -> None:
    written = make_tree(tmp_path / "d")
    train = load_arrays("folder", "train", tmp_path / "d", cache_dir=tmp_path / "c")
    assert train.classes == ["a", "b"] and tuple(train.images.shape) == (6, 3, 6, 6)
    # Files 00000..00002 are class b, 00003..00005 class a: index order, not class order.
    assert train.labels.tolist() == [1, 1, 1, 0, 0, 0]
    assert np.array_equal(train.images[0].permute(1, 2, 0).numpy(), written["train/b/00000.png"])
    order = [("b", 0), ("b", 1), ("b", 2), ("a", 3), ("a", 4), ("a", 5)]
    pixels = np.stack([written[f"train/{c}/{i:05d}.png"] for c, i in order])
    assert train.mean == pytest.approx(tuple(pixels.reshape(-1, 3).mean(0) / 255), abs=1e-9)
    assert train.std == pytest.approx(tuple(pixels.reshape(-1, 3).std(0) / 255), abs=1e-9)
    test = load_arrays("folder", "test", tmp_path / "d", cache_dir=tmp_path / "c")
    assert test.mean == train.mean and test.extra["stats_from"] == "train"


def test_other_names_load_class_by_class_and_grey_stays_one_channel(tmp_path: Path) -> None:
    make_tree(tmp_path / "d", mode="L", names="letters")
    ds = load_arrays("folder", "test", tmp_path / "d", cache_dir=tmp_path / "c")
    assert tuple(ds.images.shape) == (6, 1, 6, 6) and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(ds.mean) == 1


def test_cache_hit_returns_identical_tensors_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "d")
    first = load_arrays("folder", "train", tmp_path / "d", cache_dir=tmp_path / "c")
    cache_files = list((tmp_path / "c" / "arrays").glob("*.safetensors"))
    assert len(cache_files) >= 1

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(load_module, "read_image_folder", no_decoding)
    again = load_arrays("folder", "train", tmp_path / "d", cache_dir=tmp_path / "c")
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert again.classes == first.classes and again.mean == first.mean and again.std == first.std


def test_changing_a_file_invalidates_the_cache(tmp_path: Path) -> None:
    written = make_tree(tmp_path / "d")
    cache = tmp_path / "c"
    before = load_arrays("folder", "train", tmp_path / "d", cache_dir=cache)
    target = tmp_path / "d" / "train" / "b" / "00001.png"
    changed = 255 - written["train/b/00001.png"]
    write_png(target, changed)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # even on coarse-mtime file systems
    after = load_arrays("folder", "train", tmp_path / "d", cache_dir=cache)
    assert np.array_equal(after.images[1].permute(1, 2, 0).numpy(), changed)
    assert torch.equal(after.images[0], before.images[0]) and not torch.equal(after.images[1], before.images[1])
    # Adding a file is a change too; the stale entry of the same source is replaced, not kept.
    write_png(tmp_path / "d" / "train" / "a" / "00099.png", written["train/a/00003.png"])
    assert len(load_arrays("folder", "train", tmp_path / "d", cache_dir=cache)) == 7
    assert len(list((cache / "arrays").glob("folder-train-*.safetensors"))) == 1


def test_cache_is_keyed_by_source_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path / "one")
    make_tree(tmp_path / "two", names="letters")
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path / "env-cache"))
    one = load_arrays("folder", "train", tmp_path / "one")
    two = load_arrays("folder", "train", tmp_path / "two")
    assert one.labels.tolist() != two.labels.tolist()
    assert len(list((tmp_path / "env-cache" / "arrays").glob("folder-train-*.safetensors"))) == 2


def test_corrupt_and_empty_files_are_skipped_counted_and_strict_raises(tmp_path: Path) -> None:
    make_tree(tmp_path / "d")
    (tmp_path / "d" / "train" / "a" / "00050.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "d" / "train" / "a" / "00051.png").write_bytes(b"")
    with pytest.warns(DataWarning) as caught:
        ds = load_arrays("folder", "train", tmp_path / "d", cache_dir=tmp_path / "c")
    assert len(ds) == 6
    skipped = sorted(Path(p).name for p, _ in ds.extra["skipped"])  # type: ignore[union-attr]
    assert skipped == ["00050.png", "00051.png"]
    assert any("00050.png" in str(w.message) for w in caught)
    # A cached decode still reports what it skipped, and strict refuses it.
    with pytest.warns(DataWarning) as replayed:
        load_arrays("folder", "train", tmp_path / "d", cache_dir=tmp_path / "c")
    assert sorted(Path(str(w.message).split(": ")[0].split()[-1]).name for w in replayed) == ["00050.png", "00051.png"]
    with pytest.raises(DataError, match="0005[01].png"):
        load_arrays("folder", "train", tmp_path / "d", cache_dir=tmp_path / "c", strict=True)
    with pytest.raises(DataError, match="0005[01].png"):
        load_arrays("folder", "train", tmp_path / "d", cache_dir=tmp_path / "other", strict=True)


def test_mixed_sizes_and_missing_folders_are_data_errors(tmp_path: Path) -> None:
    make_tree(tmp_path / "d")
    write_png(tmp_path / "d" / "train" / "a" / "00077.png", np.zeros((9, 9, 3), np.uint8))
    with pytest.raises(DataError, match="one image size"):
        load_arrays("folder", "train", tmp_path / "d", cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="does not exist"):
        load_arrays("folder", "train", tmp_path / "nowhere", cache_dir=tmp_path / "c")
    (tmp_path / "e" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folders"):
        load_arrays("folder", "train", tmp_path / "e", cache_dir=tmp_path / "c")
