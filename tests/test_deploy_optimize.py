"""``resnet.deploy.optimize``: every mode returns logits close to the model's; int8 calibrated on real images agrees with fp32."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

import resnet
from resnet.deploy import optimize as _optimize
from resnet.errors import UsageError
from resnet.inference.optimize import ChannelsLast
from resnet.inference.shard import BatchSharded

from deploy_helpers import cifar_images, randomise_bn, structure

# This file tests our own engine; engine="auto" (the default) is tested in test_deploy_engines.py.
optimize = partial(_optimize, engine="ours")


def test_fp32_mode_is_exact_and_leaves_the_model_alone() -> None:
    model = randomise_bn(resnet.create_model("resnet18", num_classes=10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 3, 48, 48)
    fast = optimize(model, "fp32", example_input=x)
    with torch.no_grad():
        expected = model(x)
    got = fast(x)
    assert got.dtype == torch.float32 and got.shape == (3, 10)
    assert (got - expected).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max().item())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_batch_sharding_gives_the_same_logits() -> None:
    model = randomise_bn(resnet.create_model("resnet20"))
    x = torch.randn(9, 3, 32, 32)
    whole = optimize(model, "fp32", shard=False)
    sharded = BatchSharded(whole, workers=2)
    assert torch.allclose(sharded(x), whole(x), atol=1e-5)
    assert torch.allclose(sharded(x[:3]), whole(x[:3]), atol=1e-5)  # too small to split: runs directly


def test_large_batches_are_cut_into_small_slices_taken_from_one_queue() -> None:
    from resnet.inference.shard import slice_count

    assert slice_count(32, 224 * 224, 2) == 4  # ImageNet-size images: slices of 8
    assert slice_count(64, 224 * 224, 2) == 8
    assert slice_count(33, 224 * 224, 2) == 4  # a multiple of the workers
    assert slice_count(12, 224 * 224, 2) == 2  # never fewer slices than workers
    assert slice_count(256, 32 * 32, 2) == 8  # CIFAR images: slices of 32
    assert slice_count(64, 32 * 32, 2) == 2
    assert slice_count(256, 32 * 32, 3) == 6

    model = randomise_bn(resnet.create_model("resnet20"))
    x = torch.randn(70, 3, 32, 32)
    whole = optimize(model, "fp32", shard=False)
    calls: list[int] = []
    counted = lambda batch: (calls.append(len(batch)), whole(batch))[1]  # noqa: E731
    sharded = BatchSharded(counted, workers=2)  # type: ignore[arg-type]
    assert torch.allclose(sharded(x), whole(x), atol=1e-5)
    assert sorted(calls) == [35, 35] and len(calls) == slice_count(70, 32 * 32, 2)
    calls.clear()
    assert torch.allclose(sharded(torch.cat([x, x, x, x])), whole(torch.cat([x, x, x, x])), atol=1e-5)
    assert len(calls) == 8 and sum(calls) == 280


def test_bf16_mode_tracks_fp32() -> None:
    model = randomise_bn(resnet.create_model("resnet20"))
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    got = optimize(model, "bf16")(x)
    cos = torch.nn.functional.cosine_similarity(got.flatten(), expected.flatten(), dim=0).item()
    assert got.dtype == torch.float32 and cos > 0.99


def test_int8_mode_tracks_fp32_on_any_batch_and_size() -> None:
    model = randomise_bn(resnet.create_model("resnet20"))
    calibration = torch.randn(16, 3, 32, 32)
    fast = optimize(model, "int8", calibration=calibration, example_input=torch.randn(4, 3, 32, 32), observer="minmax")
    for shape in [(1, 3, 32, 32), (5, 3, 40, 40)]:
        x = torch.randn(shape)
        with torch.no_grad():
            expected = model(x)
        got = fast(x)
        assert got.shape == expected.shape and got.dtype == torch.float32
        cos = torch.nn.functional.cosine_similarity(got.flatten(), expected.flatten(), dim=0).item()
        assert cos > 0.95, f"int8 logits drifted from fp32 for input {shape} (cosine {cos:.3f})"


def test_int8_handles_projection_shortcuts_and_max_pool() -> None:
    model = randomise_bn(resnet.create_model("resnet26", num_classes=7))
    assert {"bottleneck", "projection", "max-pool"} <= structure(model)
    x = torch.randn(2, 3, 64, 64)
    fast = optimize(model, "int8", calibration=[torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64)], observer="minmax")
    with torch.no_grad():
        expected = model(x)
    cos = torch.nn.functional.cosine_similarity(fast(x).flatten(), expected.flatten(), dim=0).item()
    assert cos > 0.95


def test_unsupported_networks_fall_back_or_say_why() -> None:
    model = randomise_bn(resnet.create_model("resnet20", preact=True))
    x = torch.randn(2, 3, 32, 32)
    fast = optimize(model, "fp32")
    assert isinstance(fast, ChannelsLast)
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), atol=1e-5)
    with pytest.raises(UsageError, match="int8.*pre-activation"):
        optimize(model, "int8", calibration=torch.randn(2, 3, 32, 32))


def test_bad_requests_are_usage_errors() -> None:
    model = resnet.create_model("resnet20")
    with pytest.raises(UsageError, match="unknown optimization mode"):
        optimize(model, "fp64")
    with pytest.raises(UsageError, match="calibration"):
        optimize(model, "int8")
    with pytest.raises(UsageError, match="float images"):
        optimize(model, "int8", calibration=torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert optimize(model, "eager") is model


@pytest.mark.shared
def test_int8_akamaster_resnet20_agrees_with_fp32_on_real_images(akamaster_dir: Path, cifar10_dir: Path) -> None:
    model = resnet.create_model("resnet20")
    (weights,) = akamaster_dir.glob("resnet20-*.th")
    resnet.load_pretrained(model, weights)
    model.eval()
    calibration, _ = cifar_images(cifar10_dir, per_class=8)  # 80 images
    x, labels = cifar_images(cifar10_dir, per_class=20, offset=100)  # 200 other images
    with torch.no_grad():
        reference = model(x).argmax(1)
    fp32 = optimize(model, "fp32")(x).argmax(1)
    int8 = optimize(model, "int8", calibration=calibration)(x).argmax(1)
    assert torch.equal(fp32, reference)
    agreement = (int8 == reference).float().mean().item()
    assert agreement >= 0.95, f"int8 agrees with fp32 on only {agreement:.1%} of the images"
    # The model is right on ~92% of CIFAR-10; int8 must not lose more than a few of these 200.
    assert (int8 == labels).sum().item() >= (reference == labels).sum().item() - 4


def test_one_list_of_modes_and_both_spellings_of_eager() -> None:
    from resnet.cli import cmd_eval, cmd_predict, cmd_serve
    from resnet.deploy import MODES
    from resnet.evaluate.names import OPTIMIZE_MODES
    from resnet.utils import modes

    assert MODES == modes.MODES == ("eager", "fp32", "bf16", "int8")
    assert OPTIMIZE_MODES is modes.OPTIMIZE_MODES == ("none", "fp32", "bf16", "int8")  # the commands' spelling
    assert cmd_eval.OPTIMIZE_MODES is cmd_predict.OPTIMIZE_MODES is cmd_serve.OPTIMIZE_MODES is OPTIMIZE_MODES
    assert [modes.canonical_mode(m) for m in OPTIMIZE_MODES] == list(MODES)
    assert modes.is_eager("none") and modes.is_eager("eager") and not modes.is_eager("fp32")
    model = resnet.create_model("resnet8").train()
    assert optimize(model, "none") is model and optimize(model, "eager") is model and not model.training
