"""The akamaster reference checkpoints score their published CIFAR-10 test error through ``resnet eval``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet.cli import main
from resnet.reference import AKAMASTER_ERR

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def checkpoint(folder: Path, depth: int) -> Path:
    (path,) = folder.glob(f"resnet{depth}-*.th")
    return path


def run_eval(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    rc = main(["eval", *args, "--json", "--batch-size", "500"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def test_resnet20_full_test_set_is_exactly_the_published_error(akamaster_dir: Path, cifar10_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # No --model, no normalisation flags: the file name and the akamaster convention decide both.
    report = run_eval([str(checkpoint(akamaster_dir, 20)), "--data-dir", str(cifar10_dir), "--split", "test"], capsys)
    (member,) = report["members"]
    assert report["images"] == 10_000 and member["model"] == "resnet20"
    assert member["top1_err"] == pytest.approx(AKAMASTER_ERR[20], abs=1e-9)
    assert member["top5_err"] < 1.0
    assert list(member["per_class_acc"])[0] == "airplane"


def test_resnet56_on_2000_images_is_close_to_published(akamaster_dir: Path, cifar10_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Through the fused fp32 runner (exact to float rounding, ~3x faster than eager on CPU), which also
    # checks --optimize on real weights and images; the eager path is checked exactly by the ResNet-20 test.
    report = run_eval([str(checkpoint(akamaster_dir, 56)), "--data-dir", str(cifar10_dir), "--limit", "2000", "--optimize", "fp32"], capsys)
    (member,) = report["members"]
    assert report["images"] == 2000 and member["model"] == "resnet56" and member["optimize"] == "fp32"
    assert abs(member["top1_err"] - AKAMASTER_ERR[56]) <= 1.5


def test_predict_names_cifar_classes_from_an_akamaster_file(akamaster_dir: Path, cifar10_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classes = sorted(p.name for p in (cifar10_dir / "test").iterdir())
    files = [sorted((cifar10_dir / "test" / c).glob("*.png"))[i] for c in classes for i in range(3)]
    rc = main(["predict", str(checkpoint(akamaster_dir, 56)), *map(str, files), "--top", "1", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    predicted = [p["top"][0]["class"] for p in json.loads(out)["predictions"]]
    truth = [f.parent.name for f in files]
    assert sum(p == t for p, t in zip(predicted, truth)) >= 26  # 93 % accurate on average: 30 images, 4 misses allowed
