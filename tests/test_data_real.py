"""The real CIFAR-10 PNG folder in ../shared (skipped when absent): order, counts, statistics, cache."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import resnet.data.load as load_module
from resnet.data import channel_stats, load_arrays
from resnet.data.arrays import ArrayDataset

pytestmark = pytest.mark.shared


@pytest.fixture(scope="session")
def cifar10_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cifar10-cache")


@pytest.fixture(scope="session")
def cifar10_test(cifar10_dir: Path, cifar10_cache: Path) -> ArrayDataset:
    return load_arrays("cifar10", "test", cifar10_dir, cache_dir=cifar10_cache)


def readme_stats(cifar10_dir: Path, split: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    text = (cifar10_dir / "README.md").read_text()
    found = re.search(split + r" mean \(([^)]*)\), std \(([^)]*)\)", text)
    assert found, f"README gives no {split} statistics"
    return tuple(float(v) for v in found.group(1).split(",")), tuple(float(v) for v in found.group(2).split(","))


def test_test_split_official_order_and_counts(cifar10_test: ArrayDataset) -> None:
    assert tuple(cifar10_test.images.shape) == (10_000, 3, 32, 32) and cifar10_test.images.dtype == torch.uint8
    assert torch.bincount(cifar10_test.labels).tolist() == [1000] * 10
    assert cifar10_test.labels[:5].tolist() == [3, 8, 8, 0, 6]
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert cifar10_test.classes == names
    assert cifar10_test.extra["skipped"] == []


def test_statistics_match_the_readme(cifar10_dir: Path, cifar10_test: ArrayDataset) -> None:
    train_mean, train_std = readme_stats(cifar10_dir, "train")
    assert cifar10_test.mean == pytest.approx(train_mean, abs=1e-4)  # normalised with train statistics
    assert cifar10_test.std == pytest.approx(train_std, abs=1e-4)
    test_mean, test_std = readme_stats(cifar10_dir, "test")
    mean, std = channel_stats(cifar10_test.images)
    assert mean == pytest.approx(test_mean, abs=6e-5) and std == pytest.approx(test_std, abs=6e-5)


def test_second_load_comes_from_the_cache(cifar10_dir: Path, cifar10_cache: Path, cifar10_test: ArrayDataset,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    entries = list((cifar10_cache / "arrays").glob("cifar10-test-*.safetensors"))
    assert len(entries) == 1

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded the PNGs again although the cache is valid")

    monkeypatch.setattr(load_module, "read_cifar", no_decoding)
    again = load_arrays("cifar10", "test", cifar10_dir, cache_dir=cifar10_cache)
    assert torch.equal(again.images, cifar10_test.images) and torch.equal(again.labels, cifar10_test.labels)
    assert list((cifar10_cache / "arrays").glob("cifar10-test-*.safetensors")) == entries
