"""BN folding computes the same function (to 1e-5) and the fused float runners match the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resnet
from resnet.deploy import fold_bn, fold_conv_bn
from resnet.inference.fold import count_batchnorms
from resnet.inference.ours.fused import FusedResNet, onednn_bf16_available
from resnet.inference.ours.plan import build_plan, run_plan
from resnet.errors import UsageError

from deploy_helpers import randomise_bn, structure

CASES = [
    ("resnet20", {}, 32),  # CIFAR, option-A zero-pad shortcuts
    ("resnet18", {}, 64),  # basic blocks, projection shortcuts
    ("resnet26", {"version": "v1"}, 64),  # bottlenecks, stride in the 1x1
    ("plain20", {}, 32),  # no shortcuts
    ("resnet20", {"shortcut": "C"}, 32),  # projection on every block
]
COVERS = [{"zero-pad"}, {"projection", "max-pool"}, {"bottleneck", "projection", "max-pool"}, set(), {"projection"}]


@pytest.mark.parametrize(("case", "covers"), list(zip(CASES, COVERS)))
def test_each_case_holds_what_its_comment_says(case: tuple, covers: set[str]) -> None:
    name, overrides, _ = case
    model = resnet.create_model(name, **overrides)
    assert structure(model) == covers
    if "bottleneck" in covers and overrides.get("version") == "v1":  # the stride sits in the first 1x1
        first = model.layer2[0] if hasattr(model, "layer2") else None
        assert first is not None and first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)


def test_fold_conv_bn_matches_bn_after_conv() -> None:
    conv = nn.Conv2d(5, 7, 3, stride=2, padding=1, bias=True)
    bn = randomise_bn(nn.Sequential(nn.BatchNorm2d(7)))[0]
    x = torch.randn(2, 5, 9, 9)
    with torch.no_grad():
        expected = bn(conv(x))
        got = fold_conv_bn(conv, bn)(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "overrides", "size"), CASES)
def test_folded_network_is_exact_to_1e5_and_has_no_bn(name: str, overrides: dict, size: int) -> None:
    model = randomise_bn(resnet.create_model(name, **overrides))
    x = torch.randn(3, 3, size, size)
    folded = fold_bn(model)
    assert count_batchnorms(folded) == 0
    assert count_batchnorms(model) > 0, "the input model must be left untouched"
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert (got - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_torchvision_resnet_folds_too() -> None:
    from torchvision.models import resnet18

    model = randomise_bn(resnet18(weights=None, num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    folded = fold_bn(model)
    assert count_batchnorms(folded) == 0
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5 * max(1.0, model(x).abs().max().item()), rtol=0)


def test_preactivation_bns_are_left_alone() -> None:
    model = randomise_bn(resnet.create_model("resnet20", preact=True))
    folded = fold_bn(model)
    assert count_batchnorms(folded) == count_batchnorms(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-6)
    with pytest.raises(UsageError, match="pre-activation"):
        build_plan(model)


@pytest.mark.parametrize(("name", "overrides", "size"), CASES)
def test_plan_and_fused_fp32_runner_match_the_model(name: str, overrides: dict, size: int) -> None:
    model = randomise_bn(resnet.create_model(name, **overrides))
    x = torch.randn(2, 3, size, size)
    plan = build_plan(model)
    with torch.no_grad():
        expected = model(x)
        scale = max(1.0, expected.abs().max().item())
        assert (run_plan(plan, x) - expected).abs().max().item() <= 1e-5 * scale
        # Prepacked for another batch and size: the runner must still be exact on this one.
        fused = FusedResNet(plan, torch.float32, [5, 3, size * 2, size * 2])
        assert (fused(x) - expected).abs().max().item() <= 1e-4 * scale
        if not onednn_bf16_available():  # AVX2-only CPUs: PyTorch has no oneDNN bf16 convolutions there
            with pytest.raises(UsageError, match="bfloat16"):
                FusedResNet(plan, torch.bfloat16)
            return
        bf16 = FusedResNet(plan, torch.bfloat16)(x)
    assert bf16.dtype == torch.float32
    assert (bf16 - expected).abs().max().item() <= 0.1 * scale
