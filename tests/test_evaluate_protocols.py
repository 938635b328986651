"""Test-time protocols: crop geometry, averaging, fully-convolutional multi-scale testing, metrics, ensembles."""

from __future__ import annotations

import pytest
import torch

from resnet import create_model
from resnet.errors import DataError, UsageError
from resnet.evaluate import Accumulator, Center, Flip, MultiScale, Preprocess, Scorer, TenCrop, evaluate, fully_convolutional_logits
from resnet.inference.protocols import Shift, get_protocol
from resnet.inference.views import translate
from resnet.evaluate.data import ArrayEvalData
from resnet.evaluate.preprocess import center_box, five_crop_boxes, network_input
from resnet.inference.network import Network
from resnet.evaluate.ensemble import class_permutation

PLAIN = Preprocess((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 32)


def coordinate_image(h: int, w: int) -> torch.Tensor:
    """uint8 [3, h, w] whose pixel value is its row-major index, so a crop reveals where it came from."""
    assert h * w <= 256
    return torch.arange(h * w, dtype=torch.uint8).view(1, h, w).repeat(3, 1, 1)


def test_center_and_five_crop_boxes_are_corners_and_center() -> None:
    assert center_box(10, 12, 6) == (2, 3, 6, 6)
    assert center_box(256, 341, 224) == (16, 58, 224, 224)  # torchvision rounds the offset the same way
    assert five_crop_boxes(10, 12, 6) == [(0, 0, 6, 6), (0, 6, 6, 6), (4, 0, 6, 6), (4, 6, 6, 6), (2, 3, 6, 6)]
    with pytest.raises(ValueError):
        five_crop_boxes(5, 12, 6)


def test_ten_crop_views_are_the_right_boxes_and_their_mirrors() -> None:
    h, w, c = 10, 12, 6
    img = coordinate_image(h, w)
    pre = Preprocess((0.0,) * 3, (1.0,) * 3, c, resize=h, crop=c)
    views = TenCrop().views(img[None], pre)
    assert len(views) == 10 and all(v.shape == (1, 3, c, c) for v in views)
    for view, (top, left, _, _) in zip(views[:5], five_crop_boxes(h, w, c)):
        assert int(view[0, 0, 0, 0]) == top * w + left  # top-left pixel of the crop
        assert int(view[0, 0, c - 1, c - 1]) == (top + c - 1) * w + left + c - 1
    for crop_view, mirror in zip(views[:5], views[5:]):
        assert torch.equal(mirror, crop_view.flip(-1))
    # Images of different sizes in one batch are cropped one by one to the same shape.
    mixed = TenCrop().views([img, coordinate_image(12, 10)], pre)
    assert all(v.shape == (2, 3, c, c) for v in mixed)


def test_shift_views_are_the_image_and_mirror_moved_diagonally_with_zero_fill() -> None:
    img = coordinate_image(8, 8)[None] + 1  # no pixel is 0, so the zero fill shows
    views = Shift(2).views(img, Preprocess((0.0,) * 3, (1.0,) * 3, 8))
    assert len(views) == 6 and all(v.shape == img.shape for v in views)
    plain, down, up, mirror, mirror_down, mirror_up = views
    assert torch.equal(plain, img) and torch.equal(mirror, img.flip(-1))
    assert torch.equal(down[..., 2:, 2:], img[..., :-2, :-2]) and int(down[..., :2, :].sum()) == 0 and int(down[..., :, :2].sum()) == 0
    assert torch.equal(up[..., :-2, :-2], img[..., 2:, 2:]) and int(up[..., -2:, :].sum()) == 0
    assert torch.equal(mirror_down[..., 2:, 2:], img.flip(-1)[..., :-2, :-2]) and torch.equal(mirror_up[..., :-2, :-2], img.flip(-1)[..., 2:, 2:])
    # A per-channel fill (a normalised zero) and the default of crop / 16 pixels.
    filled = translate(torch.zeros(1, 3, 4, 4), 1, -1, torch.tensor([1.0, 2.0, 3.0])[:, None, None])
    assert filled[0, 2, 0, 0] == 3.0 and filled[0, 1, 3, 3] == 2.0 and filled[0, 0, 1, 0] == 0.0
    assert get_protocol("shift").pixels(PLAIN) == 2 and isinstance(get_protocol("shift", shift=1), Shift)
    with pytest.raises(UsageError, match="`shift`"):
        get_protocol("shift", shift=0)
    with pytest.raises(UsageError, match="smaller `shift`"):
        translate(img, 8, 0)


def test_center_view_resizes_the_shorter_side_then_crops() -> None:
    img = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    pre = Preprocess((0.0,) * 3, (1.0,) * 3, 16, resize=20, crop=16)
    (view,) = Center().views([img], pre)
    assert view.shape == (1, 3, 16, 16)
    # A 32x32 image with no resize/crop configured goes in untouched.
    small = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(Center().views(small, PLAIN)[0], small)


def _linear_net() -> Scorer:
    # Logits that depend on where each pixel is, so crops and mirrors give different scores.
    weight = torch.randn(5, 3 * 6 * 6)
    return Scorer(lambda x: x.flatten(1) @ weight.T / 50)


def test_ten_crop_averages_softmax_over_the_views() -> None:
    img = torch.randint(0, 256, (2, 3, 10, 12), dtype=torch.uint8)
    pre = Preprocess((0.5,) * 3, (0.25,) * 3, 6, resize=10, crop=6)
    net = _linear_net()
    probs = TenCrop().probabilities(net, img, pre)
    views = TenCrop().views(img, pre)
    expected = torch.stack([torch.softmax(net.logits(network_input(v, pre)), 1) for v in views]).mean(0)
    torch.testing.assert_close(probs, expected)
    assert not torch.allclose(probs, torch.softmax(net.logits(network_input(views[4], pre)), 1))  # not just the center crop
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


def test_flip_averages_the_view_and_its_mirror() -> None:
    img = torch.randint(0, 256, (3, 3, 6, 6), dtype=torch.uint8)
    pre = Preprocess((0.0,) * 3, (1.0,) * 3, 6)
    net = _linear_net()
    x = network_input(img, pre)
    expected = (torch.softmax(net.logits(x), 1) + torch.softmax(net.logits(x.flip(-1)), 1)) / 2
    torch.testing.assert_close(Flip().probabilities(net, img, pre), expected)


def test_classifier_as_1x1_convolution_then_averaging_equals_pooling_then_fc() -> None:
    for model, size in ((create_model("resnet8", num_classes=7), 32), (create_model("resnet18", layers=(1, 1), widths=(8, 16), stem_width=8, num_classes=5), 64)):
        model.eval()
        x = torch.randn(3, 3, size, size)
        with torch.no_grad():
            dense = fully_convolutional_logits(model, x)
            assert dense.shape[2] > 1 and dense.shape[3] > 1  # a real map, not a single position
            torch.testing.assert_close(dense.mean(dim=(2, 3)), model(x), atol=1e-5, rtol=1e-5)


def test_multiscale_with_the_center_size_equals_center_and_flip() -> None:
    model = create_model("resnet8").eval()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    net = Scorer.of(model)
    center = Center().probabilities(net, images, PLAIN)
    single = MultiScale((32,), flip=False).probabilities(net, images, PLAIN)
    torch.testing.assert_close(single, center, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(MultiScale((32,)).probabilities(net, images, PLAIN), Flip().probabilities(net, images, PLAIN), atol=1e-5, rtol=1e-5)


def test_multiscale_averages_scales_and_handles_mixed_sizes() -> None:
    model = create_model("resnet8").eval()
    net = Scorer.of(model)
    images = [torch.randint(0, 256, (3, 32, 40), dtype=torch.uint8), torch.randint(0, 256, (3, 36, 32), dtype=torch.uint8)]
    probs = MultiScale((24, 32)).probabilities(net, images, PLAIN)
    for i, img in enumerate(images):
        per_scale = [MultiScale((s,)).probabilities(net, [img], PLAIN)[0] for s in (24, 32)]
        torch.testing.assert_close(probs[i], torch.stack(per_scale).mean(0), atol=1e-6, rtol=1e-5)
    assert MultiScale().scales_for(PLAIN) == (32, 40)
    assert MultiScale().scales_for(Preprocess((0.0,) * 3, (1.0,) * 3, 224, 256, 224)) == (224, 256, 384, 480, 640)


def test_ten_crop_without_room_to_crop_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="`resize` 32 `crop` 28"):
        TenCrop().views(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), PLAIN)


def test_accumulator_top1_top5_confusion_and_per_class() -> None:
    acc = Accumulator(6)
    scores = torch.tensor(
        [
            [0.9, 0.1, 0, 0, 0, 0],  # label 0: right
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # label 0: top-1 wrong (5), 0 is ranked last -> top-5 wrong
            [0.1, 0.5, 0.4, 0, 0, 0],  # label 2: top-1 wrong (1), top-5 right
            [0, 0, 0, 0, 1, 0],  # label 4: right
        ]
    )
    acc.update(scores, torch.tensor([0, 0, 2, 4]))
    assert acc.top1_error == pytest.approx(50.0)
    assert acc.top5_error == pytest.approx(25.0)
    assert acc.confusion[0, 5] == 1 and acc.confusion[2, 1] == 1 and acc.confusion.sum() == 4
    assert acc.per_class_accuracy() == [50.0, None, 0.0, None, 100.0, None]
    assert Accumulator(3).topk == 3  # top-5 becomes top-3 with three classes


def _member(name: str, model: torch.nn.Module, classes: list[str] | None = None) -> Network:
    return Network(name, name, "random", model.eval(), PLAIN, classes)


def test_ensemble_averages_member_probabilities_and_reports_each_member() -> None:
    a, b = create_model("resnet8", num_classes=4), create_model("resnet8", num_classes=4)
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(10) % 4
    data = ArrayEvalData(images, labels, ["w", "x", "y", "z"], "synthetic")
    report = evaluate([_member("a", a), _member("b", b)], data, Center(), batch_size=4)
    assert [r.name for r in report.members] == ["a", "b"] and report.ensemble is not None
    with torch.no_grad():
        x = network_input(images, PLAIN)
        pa, pb = torch.softmax(a(x), 1), torch.softmax(b(x), 1)
    for result, probs in ((report.members[0], pa), (report.members[1], pb), (report.ensemble, (pa + pb) / 2)):
        assert result.metrics.top1_correct == int((probs.argmax(1) == labels).sum())
    d = report.as_dict()
    assert d["images"] == 10 and len(d["members"]) == 2 and d["ensemble"]["name"] == "ensemble"


def test_class_order_and_count_are_checked_against_the_data() -> None:
    model = create_model("resnet8", num_classes=3)
    member = _member("m", model, ["c", "a", "b"])
    perm = class_permutation(member, ["a", "b", "c"], "data")
    assert perm is not None and perm.tolist() == [1, 2, 0]  # data class j is the member's column perm[j]
    assert class_permutation(_member("m", model, ["a", "b", "c"]), ["a", "b", "c"], "data") is None
    with pytest.raises(DataError, match="has 4 classes but m predicts 3"):
        class_permutation(member, ["a", "b", "c", "d"], "data")
