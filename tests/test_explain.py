"""resnet.explain (Grad-CAM family through the grad-cam package) and ``resnet predict --explain``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import resnet
from resnet.errors import UsageError
from resnet.explain.cam import cam_maps, target_layer

pytestmark = pytest.mark.usefixtures("single_thread")


def _photo(h: int = 48, w: int = 64) -> torch.Tensor:
    """A bright square on a dark background, off centre: something for a map to point at."""
    img = torch.full((3, h, w), 20, dtype=torch.uint8)
    img[:, 8:30, 10:34] = 230
    return img


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("resnet8", {}),  # CIFAR stem, option-A shortcuts
        ("plain8", {}),  # plain twin
        ("preresnet110", {"layers": (1, 1, 1)}),  # pre-activation: map after the final BN/ReLU
        ("resnet18", {"layers": (1, 1, 1, 1), "num_classes": 7}),  # ImageNet stem
        ("resnet18", {"layers": (1, 1, 1, 1), "features_only": True}),  # backbone: no classifier
    ],
)
def test_explain_every_kind_of_network(name: str, kwargs: dict) -> None:
    model = resnet.create_model(name, **kwargs)
    size = 32 if model.spec.stem == "cifar" else 224
    heatmap, overlay = resnet.explain(model, _photo())
    assert heatmap.shape == (size, size) and heatmap.dtype == np.float32
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0 and heatmap.max() > heatmap.min()
    assert overlay.shape == (size, size, 3) and overlay.dtype == np.uint8
    assert all(p.grad is None for p in model.parameters())  # nothing left behind
    assert model.training  # explained in eval mode, its mode restored


def test_target_layer_is_the_last_feature_map() -> None:
    plain = resnet.create_model("resnet8")
    assert target_layer(plain) is plain.layer3
    pre = resnet.create_model("preresnet110", layers=(1, 1, 1))
    assert target_layer(pre) is pre.final_relu
    import torchvision

    tv = torchvision.models.resnet18()
    assert target_layer(tv) is tv.layer4


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_methods_and_targets(method: str, capsys: pytest.CaptureFixture[str]) -> None:
    model = resnet.create_model("resnet8").eval()
    x = torch.randn(2, 3, 32, 32)
    maps = cam_maps(model, x, method, [3, None])
    assert maps.shape == (2, 32, 32)
    # another class gives another map (the class-specific part of every method)
    other = cam_maps(model, x[:1], method, [7])
    assert not np.allclose(maps[0], other[0])
    assert "it/s" not in capsys.readouterr().err  # Score-CAM's progress bar is silenced


def test_grad_cam_matches_its_definition() -> None:
    """Grad-CAM = ReLU(sum_k mean(dy_c/dA_k) A_k), upsampled and scaled to [0, 1]."""
    model = resnet.create_model("resnet8").eval()
    x = torch.randn(1, 3, 32, 32)
    feats = {}
    handle = model.layer3.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    score = model(x)[0, 2]
    handle.remove()
    (grad,) = torch.autograd.grad(score, feats["a"])
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * feats["a"]).sum(1))[0].detach().numpy()
    ours = cam_maps(model, x, "gradcam", [2])[0]
    import cv2

    expected = cv2.resize(cam, (32, 32))
    expected = (expected - expected.min()) / (expected.max() - expected.min() + 1e-7)
    np.testing.assert_allclose(ours, expected, atol=1e-4)


def test_explain_rejects_bad_calls() -> None:
    model = resnet.create_model("resnet8")
    with pytest.raises(UsageError, match="method"):
        resnet.explain(model, _photo(), method="lime")
    with pytest.raises(UsageError, match="out of range"):
        resnet.explain(model, _photo(), target=10)
    with pytest.raises(UsageError, match="uint8"):
        resnet.explain(model, torch.rand(3, 32, 32))


def test_member_in_int8_mode_explains_its_float_model(tmp_path: Path) -> None:
    from resnet.evaluate import resolve_source
    from resnet.inference import prepare
    from resnet.models.interop import save_weights

    model = resnet.create_model("resnet8")
    save_weights(model, tmp_path / "m.safetensors", {"classes": [f"c{i}" for i in range(10)]})
    member = resolve_source(str(tmp_path / "m.safetensors"))
    prepare(member, "int8", calibration=torch.randn(8, 3, 32, 32))
    heatmap, overlay = resnet.explain(member, _photo())
    expected, _ = resnet.explain(member.model, _photo())
    np.testing.assert_array_equal(heatmap, expected)
    with pytest.raises(UsageError, match="float network|last stage"):
        resnet.explain(member.optimized, _photo())


def test_predict_explain_writes_pictures_and_contact_sheet(tmp_path: Path) -> None:
    from PIL import Image

    from resnet.cli import main
    from resnet.models.interop import save_weights

    save_weights(resnet.create_model("resnet8"), tmp_path / "m.safetensors", {"classes": [f"<c{i}>" for i in range(10)]})
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(_photo().permute(1, 2, 0).numpy()).save(photos / "a b.png")
    Image.fromarray(_photo(40, 40)[0].numpy(), "L").save(photos / "grey.png")
    (photos / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    rc = main(["predict", str(tmp_path / "m.safetensors"), str(photos), "--explain", "--method", "gradcam++", "--out", str(out), "--top", "3"])
    assert rc == 1  # one unreadable file, reported, the others explained
    pictures = sorted(p.name for p in out.glob("*.png"))
    assert pictures == ["0000-a_b.png", "0001-grey.png"]
    with Image.open(out / pictures[0]) as img:
        assert img.width > 500 and img.height > 200
    index = (out / "index.html").read_text()
    assert "0000-a_b.png" in index and "0001-grey.png" in index and "broken.png" in index
    assert "&lt;c" in index and "<c" not in index.replace("<code", "")  # class names escaped
    assert "http://" not in index and "https://" not in index
