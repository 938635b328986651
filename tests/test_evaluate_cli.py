"""``resnet eval`` / ``resnet predict`` end to end on small generated data, including bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet import create_model
from resnet.cli import main
from resnet.evaluate import Center, Preprocess, Scorer
from resnet.data.decode import read_image
from resnet.models.interop import save_weights

CLASSES = ["apple", "boat", "cloud"]
PRE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "input_size": 64, "resize": 72, "crop": 64}
SIZES = [(72, 90), (80, 80), (96, 72)]


def tiny_imagenet_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("resnet18", layers=(1, 1), widths=(8, 16), stem_width=8, num_classes=len(CLASSES)).eval()


def write_checkpoint(path: Path, seed: int = 0) -> Path:
    save_weights(tiny_imagenet_net(seed), path, {"classes": CLASSES, "dataset": "synthetic", "preprocess": PRE})
    return path


def write_tree(root: Path, classes: list[str], per_class: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for ci, name in enumerate(classes):
        folder = root / "val" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            h, w = SIZES[i % len(SIZES)]
            base = np.zeros((h, w, 3), dtype=np.uint8)
            base[..., ci % 3] = 180  # a class-dependent colour plus noise
            noise = rng.integers(0, 70, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(base + noise).save(folder / f"{i}.png")
    return root


@pytest.fixture()
def ckpt(tmp_path: Path) -> Path:
    return write_checkpoint(tmp_path / "net.safetensors")


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "data", CLASSES)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def eval_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    rc, out, err = run_cli(["eval", *args, "--json"], capsys)
    assert rc == 0, err
    return json.loads(out)


@pytest.mark.parametrize("protocol", ["center", "flip", "10crop", "multiscale"])
def test_eval_on_an_imagenet_layout_folder(ckpt: Path, tree: Path, protocol: str, capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--scales", "64", "80"] if protocol == "multiscale" else []
    report = eval_json([str(ckpt), "--data-dir", str(tree), "--split", "val", "--protocol", protocol, "--batch-size", "4", *extra], capsys)
    (member,) = report["members"]
    assert report["images"] == 9 and report["ensemble"] is None
    assert list(member["per_class_acc"]) == CLASSES
    assert 0.0 <= member["top1_err"] <= 100.0 and member["topk"] == 3 and member["top5_err"] == 0.0
    if protocol == "center":
        # The checkpoint's own preprocessing (resize 72, crop 64) was applied: recompute by hand.
        model, pre = tiny_imagenet_net(), Preprocess.from_dict(PRE)
        correct = 0
        for ci, name in enumerate(CLASSES):
            for f in sorted((tree / "val" / name).iterdir()):
                probs = Center().probabilities(Scorer.of(model), [read_image(f)], pre)
                correct += int(probs.argmax(1).item() == ci)
        assert member["correct"] == correct


def test_eval_ensemble_reports_members_and_writes_confusion_plots(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_checkpoint(tmp_path / "a.safetensors", seed=1)
    run_dir = tmp_path / "runs" / "b"
    run_dir.mkdir(parents=True)
    write_checkpoint(run_dir / "best.safetensors", seed=2)
    plots = tmp_path / "plots"
    report = eval_json([str(a), str(run_dir), "--data-dir", str(tree), "--split", "val", "--plots", str(plots)], capsys)
    assert [m["name"] for m in report["members"]] == ["a", "b"]
    assert report["ensemble"]["images"] == 9
    pngs = sorted(p.name for p in plots.glob("*.png"))
    assert pngs == ["confusion_a.png", "confusion_b.png", "confusion_ensemble.png"]
    assert all((plots / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_eval_prints_a_table_with_per_class_accuracy(ckpt: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_cli(["eval", str(ckpt), "--data-dir", str(tree), "--split", "val"], capsys)
    assert rc == 0, err
    assert "top-1 err %" in out and "per-class accuracy" in out
    assert all(c in out for c in CLASSES)


def test_class_folders_directly_under_the_root_are_accepted(ckpt: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = eval_json([str(ckpt), "--data-dir", str(tree / "val")], capsys)  # no test/ folder inside: ROOT/<class>/
    assert report["images"] == 9 and report["classes"] == CLASSES


def test_a_model_name_without_weights_is_refused(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["eval", "resnet8", "--data-dir", str(tree)], ["predict", "resnet8", str(tree)]):
        rc, out, err = run_cli(command, capsys)
        assert rc == 1 and out == "" and "no trained weights" in one_line_error(err)


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def akamaster_style_file(path: Path, depth: int = 20) -> Path:
    sd = create_model(f"resnet{depth}").state_dict()
    renamed = {("module." + k).replace("module.fc.", "module.linear."): v for k, v in sd.items() if "num_batches" not in k}
    torch.save({"state_dict": renamed, "best_prec1": 90.0}, path)
    return path


def test_mismatched_architecture_lists_keys_and_shapes(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    th = akamaster_style_file(tmp_path / "weights.th")
    rc, _, err = run_cli(["eval", str(th), "--model", "resnet32", "--data-dir", str(tree), "--split", "val"], capsys)
    line = one_line_error(err)
    assert rc == 1 and "does not fit resnet32" in line and "missing key(s): layer1.3.conv1.weight" in line
    ckpt = write_checkpoint(tmp_path / "c.safetensors")
    rc, _, err = run_cli(["eval", str(ckpt), "--model", "resnet8", "--data-dir", str(tree), "--split", "val"], capsys)
    line = one_line_error(err)
    assert rc == 1 and "shape mismatch" in line and "conv1.weight: checkpoint (8, 3, 7, 7) vs model (16, 3, 3, 3)" in line


def test_bad_data_gives_one_line_errors(tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run_cli(["eval", str(ckpt), "--data-dir", str(tmp_path / "nowhere")], capsys)
    assert rc == 1 and "does not exist" in one_line_error(err)

    empty = tmp_path / "empty"
    (empty / "val").mkdir(parents=True)
    rc, _, err = run_cli(["eval", str(ckpt), "--data-dir", str(empty), "--split", "val"], capsys)
    assert rc == 1 and "no class folders" in one_line_error(err)
    for name in CLASSES:
        (empty / "val" / name).mkdir()
    (empty / "val" / "apple" / "notes.txt").write_text("not an image")
    rc, _, err = run_cli(["eval", str(ckpt), "--data-dir", str(empty), "--split", "val"], capsys)
    assert rc == 1 and "holds no images" in one_line_error(err)

    two = write_tree(tmp_path / "two", ["apple", "boat"])
    rc, _, err = run_cli(["eval", str(ckpt), "--data-dir", str(two), "--split", "val"], capsys)
    assert rc == 1 and "has 2 classes but" in one_line_error(err)

    broken = write_tree(tmp_path / "broken", CLASSES)
    (broken / "val" / "boat" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    rc, _, err = run_cli(["eval", str(ckpt), "--data-dir", str(broken), "--split", "val"], capsys)
    assert rc == 1 and "9.png" in one_line_error(err)


def test_bad_options_are_usage_errors(tmp_path: Path, ckpt: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run_cli(["eval", str(ckpt)], capsys)
    assert rc == 2 and "--data" in one_line_error(err)
    rc, _, err = run_cli(["eval", str(ckpt), "--data", "imagenet"], capsys)
    assert rc == 2 and "needs --data-dir" in one_line_error(err)
    rc, _, err = run_cli(["eval", str(ckpt), "--data", "mnist-ish"], capsys)
    assert rc == 2 and "unknown --data" in one_line_error(err)
    rc, _, err = run_cli(["eval", "no-such-thing", "--data-dir", str(tree)], capsys)
    assert rc == 2 and "neither a checkpoint" in one_line_error(err)
    rc, _, err = run_cli(["eval", str(ckpt), "--data-dir", str(tree), "--protocol", "multiscale", "--scales", "64,abc"], capsys)
    assert rc == 2 and "--scales" in one_line_error(err)
    rc, _, err = run_cli(["eval", str(ckpt), "--data-dir", str(tree), "--protocol", "10crop", "--resize", "64"], capsys)
    assert rc == 2 and "--resize 64 --crop 56" in one_line_error(err)
    unknown = tmp_path / "mystery.pth"
    torch.save(create_model("resnet8").state_dict(), unknown)
    rc, _, err = run_cli(["eval", str(unknown), "--data-dir", str(tree), "--split", "val"], capsys)
    assert rc == 2 and "--model" in one_line_error(err)


def test_predict_reports_unreadable_files_and_goes_on(tmp_path: Path, ckpt: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tree / "val" / "apple"
    (folder / "zz_bad.png").write_bytes(b"garbage")
    rc, out, err = run_cli(["predict", str(ckpt), str(folder), str(tmp_path / "missing.jpg"), "--top", "2"], capsys)
    assert rc == 1
    assert len(out.splitlines()) == 3 and all(line.split()[0].endswith(f"{i}.png") for i, line in enumerate(out.splitlines()))
    assert any(c in out for c in CLASSES)
    errors = err.splitlines()
    assert len(errors) == 2 and "zz_bad.png" in errors[0] and "missing.jpg" in errors[1]


def test_predict_json_gives_sorted_probabilities_with_class_names(ckpt: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted((tree / "val" / "cloud").iterdir())
    rc, out, err = run_cli(["predict", str(ckpt), *map(str, files), "--top", "3", "--json", "--batch-size", "2"], capsys)
    assert rc == 0, err
    result = json.loads(out)
    assert [p["path"] for p in result["predictions"]] == [str(f) for f in files] and result["errors"] == []
    model, pre = tiny_imagenet_net(), Preprocess.from_dict(PRE)
    for p, f in zip(result["predictions"], files):
        probs = [t["prob"] for t in p["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert {t["class"] for t in p["top"]} == set(CLASSES)
        expected = Center().probabilities(Scorer.of(model), [read_image(f)], pre)[0]
        assert p["top"][0]["index"] == int(expected.argmax())
        assert p["top"][0]["prob"] == pytest.approx(float(expected.max()), abs=1e-5)


def test_predict_with_nothing_to_read_is_an_error(tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "none").mkdir()
    rc, _, err = run_cli(["predict", str(ckpt), str(tmp_path / "none")], capsys)
    assert rc == 1 and "no image files" in one_line_error(err)


def test_optimize_goes_through_resnet_deploy(ckpt: Path, tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        from resnet.deploy import optimize  # noqa: F401
    except ImportError:
        rc, _, err = run_cli(["eval", str(ckpt), "--data-dir", str(tree), "--split", "val", "--optimize", "fp32"], capsys)
        assert rc == 2 and "optimize needs resnet.deploy" in one_line_error(err)
        return
    plain = eval_json([str(ckpt), "--data-dir", str(tree), "--split", "val"], capsys)
    fast = eval_json([str(ckpt), "--data-dir", str(tree), "--split", "val", "--optimize", "fp32"], capsys)
    assert fast["members"][0]["optimize"] == "fp32"
    assert fast["members"][0]["correct"] == plain["members"][0]["correct"]
