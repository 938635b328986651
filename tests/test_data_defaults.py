"""Defaults bound to the spec and the weights, written once (issue 29 part 2).

Each stem has one data config (:mod:`resnet.models.data_config`), every fallback reads it, and a torchvision / timm
/ akamaster file loaded by path gets the preprocessing it was published with, as when it is loaded by name.
The weight files are built on disk here (random weights): nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from resnet.data.defaults import default_preprocess
from resnet.inference.load import load_network
from resnet.models import create_model
from resnet.models.data_config import STEM_DATA_CONFIGS, default_input_size
from resnet.models.specs import MODEL_SPECS
from resnet.reference import CIFAR10_MEAN, IMAGENET_MEAN
from resnet.weights import registry
from resnet.utils.download import sha256_of
from resnet.weights.registry import entries_for, find


def test_every_stem_has_its_data_config_and_the_fallbacks_read_it() -> None:
    from resnet.analysis.count_cache import input_size_of
    from resnet.data.preprocess import Preprocess
    from resnet.inference.graphs import default_example
    from resnet.train.recipes import Recipe

    for spec in MODEL_SPECS.values():
        config = spec.data_config
        assert config is STEM_DATA_CONFIGS[spec.stem]
        assert input_size_of(spec) == default_input_size(spec) == config.input_size
    imagenet, cifar = default_preprocess(MODEL_SPECS["resnet50"]), default_preprocess(MODEL_SPECS["resnet56"])
    assert (imagenet.input_size, imagenet.resize, imagenet.crop, imagenet.mean) == (224, 256, 224, IMAGENET_MEAN)
    assert (cifar.input_size, cifar.resize, cifar.crop, cifar.mean) == (32, None, None, CIFAR10_MEAN)
    assert default_example(create_model("resnet20")).shape[-1] == 32
    assert Recipe("r", 1, "").image_size == STEM_DATA_CONFIGS["imagenet"].input_size
    assert Preprocess.from_dict({"mean": [0.5], "std": [0.5]}).input_size == STEM_DATA_CONFIGS["imagenet"].input_size


def test_a_changed_stem_config_reaches_every_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet.models import data_config

    monkeypatch.setitem(data_config.STEM_DATA_CONFIGS, "cifar", replace(data_config.STEM_DATA_CONFIGS["cifar"], input_size=40))
    assert MODEL_SPECS["resnet20"].data_config.input_size == 40
    assert default_preprocess(MODEL_SPECS["resnet20"]).input_size == 40


def _torchvision_file(path: Path, name: str) -> Path:
    torch.save(create_model(name).state_dict(), path)
    return path


def test_torchvision_v2_file_by_path_gets_resize_232_as_by_name(tmp_path: Path) -> None:
    published = find("resnet50", "tv_in1k_v2")
    assert published.preprocess.resize == 232  # torchvision's own metadata
    path = _torchvision_file(tmp_path / published.filename, "resnet50")  # resnet50-11ad3fa6.pth
    net = load_network(str(path))
    assert net.preprocess == published.preprocess
    assert net.metadata["weights"] == published.name
    # the V1 file keeps V1's 256
    v1 = find("resnet50", "tv_in1k_v1")
    path.rename(tmp_path / v1.filename)
    assert load_network(str(tmp_path / v1.filename)).preprocess == v1.preprocess


def test_a_renamed_copy_is_matched_by_its_content_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _torchvision_file(tmp_path / "my_copy.pth", "resnet18")
    digest = sha256_of(path)
    entry = replace(entries_for("resnet18")[0], sha256_prefix=digest[:8], preprocess=replace(
        entries_for("resnet18")[0].preprocess, resize=240, crop=208, input_size=208))
    monkeypatch.setattr(registry, "entries_for", lambda model: (entry,) if model == "resnet18" else ())
    monkeypatch.setattr("resnet.weights.match.entries_for", registry.entries_for)
    net = load_network(str(path), model_name="resnet18")
    assert (net.preprocess.resize, net.preprocess.crop) == (240, 208)


def test_an_unmatched_file_gets_its_publishers_convention_at_the_stems_sizes(tmp_path: Path) -> None:
    net = load_network(str(_torchvision_file(tmp_path / "mine.pth", "resnet18")), model_name="resnet18")
    assert net.preprocess == default_preprocess(MODEL_SPECS["resnet18"], "imagenet")
    assert "weights" not in net.metadata
