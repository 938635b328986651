"""``resnet eval --data NAME`` through :func:`resnet.data.load_arrays`, and run folders written by the trainer.

A run folder holds ``best.safetensors`` / ``last.safetensors`` written by
:func:`resnet.models.interop.save_weights` with the trainer's metadata (class names, preprocessing,
data set name); ``eval`` and ``predict`` take the folder itself and need no other flag.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet import create_model
from resnet.cli import main
from resnet.data import load_arrays
from resnet.evaluate.preprocess import Preprocess, network_input
from resnet.inference.load import CIFAR10_CLASSES
from resnet.models.interop import save_weights

from test_evaluate_cli import one_line_error


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path / "cache"))


def digits_net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("resnet8", in_chans=1, num_classes=10).eval()


def write_run(folder: Path, *, best_seed: int | None, last_seed: int | None) -> Path:
    """A run folder as ``resnet train --data digits`` leaves it (metadata of the same shape)."""
    digits = load_arrays("digits", "train")
    meta = {
        "classes": digits.classes, "dataset": "digits", "recipe": "digits", "recipe_version": 1, "seed": 0,
        "preprocess": {"mean": list(digits.mean), "std": list(digits.std), "input_size": 32},
    }
    folder.mkdir(parents=True)
    if best_seed is not None:
        save_weights(digits_net(best_seed), folder / "best.safetensors", {**meta, "step": 20, "holdout_error": 50.0})
    if last_seed is not None:
        save_weights(digits_net(last_seed), folder / "last.safetensors", {**meta, "step": 30})
    return folder


def correct_by_hand(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, pre: Preprocess) -> int:
    with torch.no_grad():
        return int((model(network_input(images, pre)).argmax(1) == labels).sum())


def eval_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    rc = main(["eval", *args, "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def test_run_folder_on_embedded_digits_prefers_best(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "runs" / "r8-digits", best_seed=1, last_seed=2)
    report = eval_json([str(run), "--data", "digits"], capsys)
    (member,) = report["members"]
    test = load_arrays("digits", "test")
    assert report["images"] == len(test) == 360 and report["classes"] == [str(d) for d in range(10)]
    assert member["name"] == "r8-digits" and member["model"] == "resnet8"
    train = load_arrays("digits", "train")
    pre = Preprocess(train.mean, train.std, 32)  # the training statistics travel in the checkpoint
    assert member["correct"] == correct_by_hand(digits_net(1), test.images, test.labels, pre)  # best, not last
    assert member["correct"] != correct_by_hand(digits_net(2), test.images, test.labels, pre)


def test_run_folder_with_only_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", best_seed=None, last_seed=3)
    report = eval_json([str(run), "--data", "digits", "--split", "train", "--limit", "100"], capsys)
    (member,) = report["members"]
    train = load_arrays("digits", "train")
    idx = torch.tensor([i * len(train) // 100 for i in range(100)])
    pre = Preprocess(train.mean, train.std, 32)
    assert report["images"] == 100
    assert member["correct"] == correct_by_hand(digits_net(3), train.images[idx], train.labels[idx], pre)


def test_predict_takes_a_run_folder_and_names_its_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", best_seed=1, last_seed=2)
    test = load_arrays("digits", "test")
    files = []
    for i in range(3):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).convert("RGB").save(path)  # colour files of grey digits
        files.append(path)
    rc = main(["predict", str(run), *map(str, files), "--top", "2", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    result = json.loads(out)
    assert result["model"] == "resnet8" and len(result["predictions"]) == 3
    train = load_arrays("digits", "train")
    with torch.no_grad():
        expected = digits_net(1)(network_input(test.images[:3], Preprocess(train.mean, train.std, 32))).softmax(1)
    for p, probs in zip(result["predictions"], expected):
        assert p["top"][0]["class"] == str(int(probs.argmax())) and p["top"][0]["prob"] == pytest.approx(float(probs.max()), abs=1e-5)


def write_cifar_tree(root: Path, per_class: int = 2) -> Path:
    """A CIFAR-10 PNG folder (``test/<class>/<index>.png``, 32x32) with ``per_class`` images per class."""
    rng = np.random.default_rng(0)
    index = 0
    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for _ in range(per_class):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{index:05d}.png")
                index += 1
    return root


def cifar_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    pre = {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26], "input_size": 32}
    save_weights(create_model("resnet8").eval(), path, {"classes": CIFAR10_CLASSES, "dataset": "cifar10", "preprocess": pre})
    return path


def test_data_cifar10_reads_a_png_folder_through_load_arrays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = write_cifar_tree(tmp_path / "cifar10")
    ckpt = cifar_checkpoint(tmp_path / "net.safetensors")
    report = eval_json([str(ckpt), "--data", "cifar10", "--data-dir", str(tree)], capsys)
    assert report["images"] == 20 and report["classes"] == CIFAR10_CLASSES
    assert report["data"] == f"cifar10 test from {tree}"
    # The same images read as a plain folder give the same count of right answers.
    plain = eval_json([str(ckpt), "--data-dir", str(tree)], capsys)
    assert plain["members"][0]["correct"] == report["members"][0]["correct"]


def test_data_name_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = write_cifar_tree(tmp_path / "cifar10")
    ckpt = cifar_checkpoint(tmp_path / "net.safetensors")

    def error(args: list[str]) -> tuple[int, str]:
        rc = main(["eval", str(ckpt), *args])
        return rc, one_line_error(capsys.readouterr().err)

    (tree / "test" / "cat" / "99999.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    rc, line = error(["--data", "cifar10", "--data-dir", str(tree)])
    assert rc == 1 and "99999.png" in line  # never skipped: that would change the error figures
    rc, line = error(["--data", "folder", "--data-dir", str(tree)])
    assert rc == 1 and "99999.png" in line
    (tree / "test" / "cat" / "99999.png").unlink()
    (tmp_path / "empty").mkdir()
    rc, line = error(["--data", "cifar10", "--data-dir", str(tmp_path / "empty")])
    assert rc == 1 and "no cifar10 data" in line
    rc, line = error(["--data", "cifar10", "--data-dir", str(tmp_path / "missing")])
    assert rc == 1 and "does not exist" in line
    rc, line = error(["--data", "cifar100", "--data-dir", str(tree)])
    assert rc == 1 and "cifar100 has 100" in line
    rc, line = error(["--data", "cifar10", "--split", "val", "--data-dir", str(tree)])
    assert rc == 2 and "split" in line
    run = write_run(tmp_path / "digits-run", best_seed=1, last_seed=None)
    rc = main(["eval", str(run), "--data", "cifar10", "--data-dir", str(tmp_path / "cifar10"), "--limit", "5"])
    line = one_line_error(capsys.readouterr().err)
    assert rc == 1 and "other classes" in line  # digits' names are not CIFAR-10's: refused before the channels (issue 14)


@pytest.mark.shared
def test_data_cifar10_on_the_real_test_set(akamaster_dir: Path, cifar10_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (weights,) = akamaster_dir.glob("resnet20-*.th")
    report = eval_json([str(weights), "--data", "cifar10", "--data-dir", str(cifar10_dir), "--limit", "500", "--optimize", "fp32"], capsys)
    (member,) = report["members"]
    assert report["images"] == 500 and report["classes"] == CIFAR10_CLASSES
    assert member["top1_err"] < 12.0  # 8.27 % on all 10,000 (checked exactly in test_evaluate_akamaster.py)
