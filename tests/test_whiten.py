"""The whitening start of the first convolution (recipe field ``whiten_stem``, train/whiten.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet.errors import UsageError
from resnet.models import create_model
from resnet.train import TrainOptions, Trainer, get_recipe
from resnet.train.distributed import DistContext
from resnet.train.whiten import whiten_stem, whitening_filters


def _correlated_images(n: int = 400) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 12, 12, generator=g)
    x[:, 1] += 2 * x[:, 0]  # channels far from white, so a plain start would not decorrelate them
    x[:, 2] += x.roll(1, dims=-1)[:, 2]
    return x


def test_filters_give_unit_variance_decorrelated_outputs_in_opposite_pairs() -> None:
    x = _correlated_images()
    w = whitening_filters(x, 8, 3)
    assert w.shape == (8, 3, 3, 3)
    y = F.conv2d(x, w).transpose(0, 1).reshape(8, -1)
    cov = torch.cov(y)
    kept = cov[::2, ::2]  # one filter of each pair: the leading four directions
    assert torch.allclose(kept, torch.eye(4), atol=0.02)
    assert torch.allclose(torch.diagonal(cov, 1)[::2], -torch.ones(4), atol=0.02)  # each pair is a direction and its negative


def test_leading_direction_has_the_largest_variance_before_scaling() -> None:
    x = _correlated_images()
    w = whitening_filters(x, 6, 3).reshape(6, -1)
    norms = w[::2].norm(dim=1)  # 1 / sqrt(variance + eps): grows as the variance falls
    assert (norms[1:] >= norms[:-1]).all()


def test_whiten_stem_sets_conv1_from_the_first_images_of_the_stream() -> None:
    model = create_model("resnet8", num_classes=10)
    before = model.conv1.weight.detach().clone()
    x = _correlated_images(64)
    batches = [(x[i:i + 16], torch.zeros(16)) for i in range(0, 64, 16)]
    note = whiten_stem(model, iter(batches), images=40)
    assert "40 training images" in note
    assert not torch.equal(model.conv1.weight, before)
    assert torch.allclose(model.conv1.weight, whitening_filters(x[:40], model.conv1.out_channels, 3))


def test_a_stem_wider_than_the_patch_directions_keeps_its_other_filters() -> None:
    """ResNet-9's 64-filter stem over 27-value patches: 54 whitened filters, the last 10 as initialised."""
    assert whitening_filters(_correlated_images(), 64, 3).shape == (54, 3, 3, 3)
    model = create_model("resnet9")
    before = model.conv1.weight.detach().clone()
    x = _correlated_images(64)
    note = whiten_stem(model, iter([(x, torch.zeros(64))]), images=64)
    assert "54 filters" in note and "10 more keep their initialisation" in note
    assert torch.allclose(model.conv1.weight[:54], whitening_filters(x, 64, 3))
    assert torch.equal(model.conv1.weight[54:], before[54:])


def test_a_network_without_conv1_is_refused() -> None:
    with pytest.raises(UsageError, match="set whiten_stem=0"):
        whiten_stem(nn.Sequential(nn.Linear(3, 3)), iter([]), images=10)


def test_recipe_validation_and_the_trainer_whitens_on_request(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="whiten_stem must be 0"):
        replace(get_recipe("cifar-fast"), whiten_stem=-1).validate()
    overrides = {"iterations": "2", "batch_size": "32", "holdout": "100", "core_replicas": "1", "whiten_stem": "200"}
    trainer = Trainer(TrainOptions(model="resnet8", data="digits", overrides=overrides, out=tmp_path / "run",
                                   progress=False, tensorboard=False), torch.device("cpu"), DistContext())
    trainer.build()
    assert trainer.task.whiten_note is not None and "200 training images" in trainer.task.whiten_note
    images = torch.cat([x for x, _ in (b for _, b in zip(range(7), trainer.task.data.stream(0, 0)))])[:200]
    expected = whitening_filters(images, trainer.model.conv1.out_channels, 3)
    assert torch.allclose(trainer.model.conv1.weight.float(), expected.to(memory_format=torch.channels_last), atol=1e-5)
