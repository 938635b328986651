"""resnet.backbone in torchvision's detection / segmentation heads, and torchvision's checkpoints mapped onto it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import detection as tv_det
from torchvision.models import segmentation as tv_seg

import resnet
from resnet.errors import CheckpointError, UsageError
from resnet.models.dense import create_dense_model, load_torchvision_dense

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("head", ["fasterrcnn", "maskrcnn", "retinanet"])
def test_fpn_backbone_plugs_into_torchvision_detectors(head: str) -> None:
    from torchvision.models.detection import FasterRCNN, MaskRCNN, RetinaNet
    from torchvision.models.detection.retinanet import _default_anchorgen
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    if head == "retinanet":
        net = resnet.backbone("plain18", returned_layers=(2, 3, 4), extra_blocks=LastLevelP6P7(256, 256))
        model = RetinaNet(net, 3, anchor_generator=_default_anchorgen(), min_size=64, max_size=96)
    else:
        net = resnet.backbone("resnet18")
        model = (FasterRCNN if head == "fasterrcnn" else MaskRCNN)(net, num_classes=3, min_size=64, max_size=96)
    assert net.out_channels == 256
    images = [torch.rand(3, 64, 80)]
    target = {"boxes": torch.tensor([[10.0, 12.0, 40.0, 50.0]]), "labels": torch.tensor([1]),
              "masks": torch.zeros(1, 64, 80, dtype=torch.uint8)}
    target["masks"][0, 12:50, 10:40] = 1
    model.train()
    losses = model(images, [target])
    assert all(torch.isfinite(v) for v in losses.values()) and len(losses) == (2 if head == "retinanet" else 4 + (head == "maskrcnn"))
    sum(losses.values()).backward()
    assert net.body.layer1[0].conv1.weight.grad is not None  # from scratch: every stage trains
    model.eval()
    with torch.no_grad():
        out = model(images)[0]
    assert set(out) >= {"boxes", "scores", "labels"}


@pytest.mark.parametrize(("head", "stride"), [("deeplabv3", 8), ("fcn", 16)])
def test_dilated_backbone_plugs_into_torchvision_segmenters(head: str, stride: int) -> None:
    model = create_dense_model(head, "resnet18", 3, output_stride=stride, aux=True).eval()
    x = torch.rand(1, 3, 64, 64)
    feats = model.backbone(x)
    assert feats["out"].shape[-1] == 64 // stride and feats["out"].shape[1] == model.backbone.out_channels == 512
    assert feats["aux"].shape[1] == 256
    with torch.no_grad():
        out = model(x)
    assert out["out"].shape == (1, 3, 64, 64) and out["aux"].shape == (1, 3, 64, 64)


@pytest.mark.parametrize(("name", "overrides", "channels"), [
    ("plain34", {}, [64, 128, 256, 512]),
    ("resnext50_32x4d", {}, [256, 512, 1024, 2048]),
    ("wide_resnet50_2", {"version": "v1"}, [256, 512, 1024, 2048]),
    ("resnet50", {"preact": True}, [256, 512, 1024, 2048]),
])
def test_any_imagenet_style_net_is_a_backbone(name: str, overrides: dict, channels: list[int]) -> None:
    net = resnet.backbone(name, **overrides).eval()
    assert [m[0].in_channels for m in net.fpn.inner_blocks] == channels
    with torch.no_grad():
        feats = net(torch.rand(1, 3, 64, 64))
    assert list(feats) == ["0", "1", "2", "3", "pool"]
    assert [f.shape[-1] for f in feats.values()] == [16, 8, 4, 2, 1]
    dilated = resnet.backbone(name, fpn=False, output_stride=16, **overrides).eval()
    with torch.no_grad():
        assert dilated(torch.rand(1, 3, 64, 64))["out"].shape == (1, channels[-1], 4, 4)


def _tv_detector(builder, path: Path, **kw):  # noqa: ANN001, ANN202
    ref = builder(weights=None, weights_backbone=None, min_size=64, max_size=96, **kw).eval()
    torch.save(ref.state_dict(), path)
    return ref


@pytest.mark.parametrize(("head", "builder", "thresh"), [
    ("fasterrcnn", tv_det.fasterrcnn_resnet50_fpn, "box_score_thresh"),
    ("maskrcnn", tv_det.maskrcnn_resnet50_fpn, "box_score_thresh"),
    ("retinanet", tv_det.retinanet_resnet50_fpn, "score_thresh"),
])
def test_torchvision_detection_checkpoints_give_equal_outputs(tmp_path: Path, head: str, builder, thresh: str) -> None:  # noqa: ANN001
    # A zero score threshold keeps detections to compare (a random head scores below torchvision's default).
    kw = {thresh: 0.0, ("detections_per_img" if head == "retinanet" else "box_detections_per_img"): 20}
    ref = _tv_detector(builder, tmp_path / "tv.pth", **kw)
    ours = create_dense_model(head, "resnet50", 91, min_size=64, max_size=96, **kw).eval()
    load_torchvision_dense(ours, tmp_path / "tv.pth")
    images = [torch.rand(3, 64, 80)]
    with torch.no_grad():
        expected, got = ref(images)[0], ours(images)[0]
        feats_ref, feats_ours = ref.backbone(images[0][None]), ours.backbone(images[0][None])
    assert len(expected["boxes"]) > 0
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=0)
    for key in feats_ref:
        torch.testing.assert_close(feats_ours[key], feats_ref[key], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("head", "builder"), [("deeplabv3", tv_seg.deeplabv3_resnet50), ("fcn", tv_seg.fcn_resnet50)])
def test_torchvision_segmentation_checkpoints_give_equal_outputs(tmp_path: Path, head: str, builder) -> None:  # noqa: ANN001
    ref = builder(weights=None, weights_backbone=None, num_classes=21, aux_loss=True).eval()
    torch.save({"model": ref.state_dict()}, tmp_path / "tv.pth")  # wrapped, as torchvision's training scripts save
    ours = create_dense_model(head, "resnet50", 21, output_stride=8, aux=True).eval()
    load_torchvision_dense(ours, tmp_path / "tv.pth")
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    for key in ("out", "aux"):
        torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=0)


def test_checkpoint_of_another_backbone_is_a_one_line_error(tmp_path: Path) -> None:
    ref = tv_seg.fcn_resnet50(weights=None, weights_backbone=None, num_classes=21)
    torch.save(ref.state_dict(), tmp_path / "fcn50.pth")
    ours = create_dense_model("fcn", "resnet18", 21)
    with pytest.raises(CheckpointError) as err:
        load_torchvision_dense(ours, tmp_path / "fcn50.pth")
    message = str(err.value)
    assert "\n" not in message and "shape mismatch" in message and "backbone.layer1.0.conv1.weight" in message


def test_classification_checkpoint_initialises_the_backbone(tmp_path: Path) -> None:
    from resnet.models.interop import save_weights

    classifier = resnet.create_model("resnet18", num_classes=10)
    with torch.no_grad():
        for p in classifier.parameters():
            p.normal_()
    save_weights(classifier, tmp_path / "r18.safetensors")
    net = resnet.backbone("resnet18", pretrained=tmp_path / "r18.safetensors", trainable_layers=2)
    torch.testing.assert_close(net.body.layer3[1].conv2.weight, classifier.layer3[1].conv2.weight)
    from torchvision.ops.misc import FrozenBatchNorm2d

    assert isinstance(net.body.bn1, FrozenBatchNorm2d)  # pretrained: BN frozen, as torchvision does
    torch.testing.assert_close(net.body.bn1.running_var, classifier.bn1.running_var)
    trainable = {n.split(".")[0] for n, p in net.body.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "layer4"}
    with pytest.raises(CheckpointError, match="not a file"):
        resnet.backbone("resnet18", pretrained=tmp_path / "missing.safetensors")


def test_bad_backbone_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="CIFAR-style"):
        resnet.backbone("resnet20")
    with pytest.raises(UsageError, match="fpn=True"):
        resnet.backbone("resnet18", output_stride=16)
    with pytest.raises(UsageError, match="trainable_layers"):
        resnet.backbone("resnet18", trainable_layers=6)
    with pytest.raises(UsageError, match="unknown head"):
        create_dense_model("yolo", "resnet18")
