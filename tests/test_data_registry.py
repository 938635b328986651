"""One home for each data fact: the data-set registry, the folder rule, the decoder and the typed preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.cli.options import as_flags
from resnet.data import load as data_load
from resnet.data.preprocess import Preprocess
from resnet.data.registry import (
    ALL_DATASETS,
    ARRAY_DATASETS,
    FOLDER_DATASETS,
    data_set,
    dataset_stats,
    existing_dir,
    sample_folder,
)
from resnet.data.load import open_arrays
from resnet.data.scan import IMAGE_EXTENSIONS, find_images, split_folder
from resnet.errors import DataError, UsageError
from resnet.reference import CIFAR10_MEAN, IMAGENET_STD


def _photo(path: Path, value: int, size: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)
    return path


def test_every_reader_takes_its_names_from_the_registry() -> None:
    from resnet.inference import calibration
    from resnet.evaluate import data as eval_data
    from resnet.train import data as train_data

    assert ALL_DATASETS == ARRAY_DATASETS + FOLDER_DATASETS == ("cifar10", "cifar100", "digits", "folder", "imagenet")
    assert data_load.DATASETS is ARRAY_DATASETS
    assert train_data.ALL_DATASETS is ALL_DATASETS and train_data.ARRAY_DATASETS is ARRAY_DATASETS
    assert eval_data.ALL_DATASETS is ALL_DATASETS and calibration.ARRAY_DATASETS is ARRAY_DATASETS
    assert data_set("imagenet").kind == "folder" and data_set("folder").kind == "arrays"
    assert dataset_stats("cifar10")[0] == CIFAR10_MEAN and dataset_stats("imagenet")[1] == IMAGENET_STD
    assert dataset_stats("digits") is None and dataset_stats(None) is None
    assert data_set("imagenet").published_stats()[1] == IMAGENET_STD
    with pytest.raises(DataError, match="measured on its training split"):
        data_set("digits").published_stats()
    with pytest.raises(UsageError, match="unknown data set 'mnist'; choose one of cifar10, cifar100, digits, folder, imagenet"):
        data_set("mnist")


def test_the_folder_check_is_written_once_and_names_the_option(tmp_path: Path) -> None:
    assert existing_dir(None) is None and existing_dir(tmp_path) == tmp_path
    with pytest.raises(DataError) as err:
        existing_dir(tmp_path / "nope")
    assert as_flags(str(err.value), {"data_dir": "--data-dir"}) == f"data folder {tmp_path / 'nope'} does not exist; check --data-dir"
    with pytest.raises(DataError, match="does not exist"):
        open_arrays("digits", "train", tmp_path / "nope")
    with pytest.raises(UsageError, match="unknown data set 'imagenet'; choose one of cifar10, cifar100, digits, folder$"):
        open_arrays("imagenet", "train", tmp_path)
    assert len(open_arrays("digits", "test", None)) > 0


def test_one_split_rule_with_its_two_options(tmp_path: Path) -> None:
    (tmp_path / "val").mkdir()
    assert split_folder(tmp_path, "test") == tmp_path / "val"  # test falls back to val
    assert split_folder(tmp_path, None) == tmp_path / "val"
    with pytest.raises(DataError, match="test/ does not exist"):
        split_folder(tmp_path, "test", fallback=False)
    with pytest.raises(DataError, match="has no test/ folder but has val/"):
        split_folder(tmp_path, "test", fallback=False, classes_at_root=True)
    flat = tmp_path / "flat"
    (flat / "cat").mkdir(parents=True)
    assert split_folder(flat, "train", classes_at_root=True) == flat  # class folders right under the root
    photo = _photo(tmp_path / "x.png", 1)
    with pytest.raises(DataError, match="is not a folder"):
        split_folder(photo, "train", classes_at_root=True)
    with pytest.raises(DataError, match="does not exist; pass the folder that holds train/"):
        split_folder(photo, "train")


def test_images_are_found_by_one_extension_list(tmp_path: Path) -> None:
    for ext in IMAGE_EXTENSIONS[:3]:
        _photo(tmp_path / "in" / f"a{ext}", 5)
    (tmp_path / "in" / "notes.txt").write_text("x")
    found = find_images([tmp_path / "in", tmp_path / "given.txt"])
    assert [p.suffix for p in found] == [".jpeg", ".jpg", ".png", ".txt"]


def test_sample_folder_draws_seeded_images_with_their_own_statistics(tmp_path: Path) -> None:
    for i in range(4):
        _photo(tmp_path / "train" / "a" / f"{i}.png", 10 + i)
        _photo(tmp_path / "train" / "b" / f"{i}.png", 200 + i)
    (tmp_path / "train" / "b" / "empty.png").write_bytes(b"")  # left out by the scanner, not sampled
    one = sample_folder(tmp_path, "train", 5, seed=3)
    two = sample_folder(tmp_path, "train", 5, seed=3)
    assert one.classes == ["a", "b"] and len(one) == 5
    assert torch.equal(one.images, two.images) and torch.equal(one.labels, two.labels)
    scaled = one.images.double() / 255
    assert one.mean == pytest.approx(tuple(scaled.mean(dim=(0, 2, 3)).tolist()))


def test_preprocess_reads_old_partial_dicts_and_round_trips() -> None:
    old = {"mean": [0.5], "std": [0.25], "input_size": 8}  # what array runs wrote before Preprocess
    pre = Preprocess.from_dict(old)
    assert pre == Preprocess((0.5,), (0.25,), 8) and pre.crop_size == 8 and pre.resize is None
    full = Preprocess((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 24, resize=28, crop=24, interpolation="bicubic")
    assert Preprocess.from_dict(full.as_dict()) == full


def test_training_data_carries_a_typed_preprocess() -> None:
    from resnet.train.data import load_train_data
    from resnet.train.distributed import DistContext
    from resnet.train.recipes import get_recipe

    recipe = get_recipe("digits")
    data = load_train_data("digits", None, recipe, seed=0, device=torch.device("cpu"), dist=DistContext(),
                           dtype=torch.float32)
    assert isinstance(data.preprocess, Preprocess)
    assert data.preprocess.mean == data.mean and data.preprocess.input_size == data.image_size
    assert Preprocess.from_dict(data.preprocess.as_dict()) == data.preprocess
