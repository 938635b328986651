"""The PyTorch-native engine (:mod:`resnet.inference.pytorch`): torch.export + AOTInductor for fp32 / bf16,
TorchAO's PT2E int8. Each compiled engine is built once per module (a compile costs seconds to tens of seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import resnet
from resnet.errors import ResNetError, UsageError
from resnet.inference.pytorch import (
    FAMILY,
    INT8_MIXED_BF16,
    LABELS,
    PyTorchEngine,
    compile_engine,
    load_package,
    pytorch_candidates,
    save_package,
)

from deploy_helpers import cifar_images, randomise_bn

pytest.importorskip("torchao")


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return randomise_bn(resnet.create_model("resnet8"))


@pytest.fixture(scope="module")
def fp32_engine(tiny: torch.nn.Module) -> PyTorchEngine:
    torch.manual_seed(1)
    metadata = {"model": "resnet8", "classes": "[]"}
    return compile_engine(tiny, "fp32", example=torch.randn(3, 3, 32, 32), metadata=metadata)


def test_fp32_matches_the_model_at_any_batch_size_from_one_compile(
    tiny: torch.nn.Module, fp32_engine: PyTorchEngine
) -> None:
    assert fp32_engine.engine == LABELS["fp32"] == "pytorch inductor"
    for batch in (1, 5):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            ref = tiny(x)
        out = fp32_engine(x)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4), (out - ref).abs().max()


def test_saved_package_loads_back_with_its_metadata(tmp_path: Path, fp32_engine: PyTorchEngine) -> None:
    path = save_package(fp32_engine, tmp_path / "net.pt2")
    loaded = load_package(path)
    assert loaded.engine == fp32_engine.engine
    assert loaded.metadata["model"] == "resnet8" and loaded.metadata["arithmetic"] == "fp32"
    assert loaded.metadata["input_shape"] == "3,32,32"
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(loaded(x), fp32_engine(x))


def test_bad_inputs_give_one_clear_error(tmp_path: Path, fp32_engine: PyTorchEngine, tiny: torch.nn.Module) -> None:
    with pytest.raises(UsageError, match=r"takes float images \[N, 3x32x32\], got .*\(2, 3, 64, 64\)"):
        fp32_engine(torch.randn(2, 3, 64, 64))
    with pytest.raises(UsageError, match="float images"):
        fp32_engine(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(UsageError, match="empty batch"):
        fp32_engine(torch.zeros(0, 3, 32, 32))
    with pytest.raises(UsageError, match="unknown arithmetic"):
        compile_engine(tiny, "fp16", example=torch.randn(1, 3, 32, 32))
    with pytest.raises(UsageError, match="calibration"):
        compile_engine(tiny, "int8", example=torch.randn(1, 3, 32, 32))
    with pytest.raises(UsageError, match="no PyTorch package"):
        load_package(tmp_path / "missing.pt2")
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a package")
    with pytest.raises(ResNetError, match="cannot load"):
        load_package(junk)


def test_candidates_are_lazy_and_named() -> None:
    def never(*_: object) -> None:
        raise AssertionError("compiled while listing")

    model = resnet.create_model("resnet8").eval()
    example = torch.randn(2, 3, 32, 32)
    assert [c.label for c in pytorch_candidates("fp32", model, example, None, 2)] == ["pytorch inductor"]
    assert [c.label for c in pytorch_candidates("bf16", model, example, None, 2)] == ["pytorch inductor bf16"]
    int8 = pytorch_candidates("int8", model, example, None, 2)
    assert [c.label for c in int8] == [LABELS["int8"], LABELS[INT8_MIXED_BF16]]
    assert {c.family for c in int8} == {FAMILY} == {"pytorch"}
    assert pytorch_candidates("eager", model, example, None, 2) == []
    with pytest.raises(UsageError, match="calibration"):  # building is what compiles, and it says what is missing
        int8[0].build()


@pytest.mark.slow
def test_bf16_is_close_to_the_model(tiny: torch.nn.Module) -> None:
    engine = compile_engine(tiny, "bf16", example=torch.randn(2, 3, 32, 32))
    assert engine.engine == "pytorch inductor bf16"
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        ref = tiny(x)
    out = engine(x)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() <= 0.05 * ref.abs().max() + 0.05


@pytest.fixture(scope="module")
def akamaster_resnet20(akamaster_dir: Path) -> torch.nn.Module:
    model = resnet.create_model("resnet20")
    (weights,) = akamaster_dir.glob("resnet20-*.th")
    resnet.load_pretrained(model, weights)
    return model.eval()


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("arithmetic", ["int8", INT8_MIXED_BF16])
def test_int8_agrees_with_the_model_on_real_images(
    akamaster_resnet20: torch.nn.Module, cifar10_dir: Path, arithmetic: str
) -> None:
    calibration, _ = cifar_images(cifar10_dir, per_class=8)  # 80 images
    x, labels = cifar_images(cifar10_dir, per_class=20, offset=100)  # 200 other images
    engine = compile_engine(akamaster_resnet20, arithmetic, example=x[:4], calibration=calibration)
    assert engine.engine == LABELS[arithmetic]
    with torch.no_grad():
        reference = akamaster_resnet20(x).argmax(1)
    int8 = torch.cat([engine(x[:1]), engine(x[1:])]).argmax(1)  # batch 1 and 199 from one compile
    agreement = (int8 == reference).float().mean().item()
    assert agreement >= 0.95, f"{arithmetic} agrees with fp32 on only {agreement:.1%} of the images"
    assert (int8 == labels).sum().item() >= (reference == labels).sum().item() - 4
