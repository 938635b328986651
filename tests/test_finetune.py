"""Fine-tuning (resnet train --init): end to end on tiny photo folders, frozen parts, groups, resume, bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import resnet
from resnet.cli import main
from resnet.data.preprocess import Preprocess
from resnet.reference import IMAGENET_MEAN, IMAGENET_STD
from resnet.train import TrainOptions, get_recipe, train
from resnet.train.finetune import freeze
from resnet.train.optim import group_plan
from resnet.weights import registry as registry_module

from weights_helpers import Files, entry_for, serve, state_bytes, write

QUICK = ["--set", "iterations=3", "--set", "batch_size=4", "--set", "eval_every=100", "--set", "core_replicas=1",
         "--no-tensorboard", "--no-progress"]
TINY = [*QUICK, "--set", "image_size=16"]
COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "owl": (40, 40, 200)}


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESNET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("RESNET_WEIGHTS_MIRROR", raising=False)


def photos(root: Path, classes: dict[str, int], val: bool = True) -> Path:
    """Photos of assorted sizes, formats and colour modes in ``root/train/<class>/`` (and ``val/``)."""
    rng = random.Random(0)
    for split in ("train", "val") if val else ("train",):
        for name, n in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n if split == "train" else 2):
                size = (rng.randint(20, 60), rng.randint(20, 60))
                colour = COLOURS.get(name, (120, 120, 120))
                img = Image.new("L", size, sum(colour) // 3) if i % 4 == 3 else Image.new("RGB", size, colour)
                img.save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def init_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CIFAR-10 checkpoint in akamaster's format, named so that the network is read off the file name."""
    torch.manual_seed(3)
    return write(tmp_path_factory.mktemp("init") / "resnet8-00000000.th", state_bytes(resnet.create_model("resnet8")))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last.safetensors"))


def test_finetune_end_to_end_then_predict_by_class_name(tmp_path: Path, init_file: Path, capsys) -> None:
    data = photos(tmp_path / "photos", {"cat": 6, "dog": 6, "owl": 6})
    run = tmp_path / "run"
    assert main(["train", "--init", str(init_file), "--data", "folder", "--data-dir", str(data), "--out", str(run), *TINY]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and summary["init"] == "resnet8-00000000"
    assert "classifier (10 classes (airplane" in summary["init_note"] and "3 classes (cat, dog, owl)" in summary["init_note"]
    meta = json.loads((run / "recipe.json").read_text())
    assert meta["recipe"]["name"] == "finetune"  # the default recipe with --init on a folder
    capsys.readouterr()
    assert main(["predict", str(run), str(data / "val" / "owl" / "0.jpg"), "--json", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert all(f'"{name}"' in out for name in ("cat", "dog", "owl")) and "airplane" not in out
    assert main(["eval", str(run), "--data", "imagenet", "--data-dir", str(data), "--split", "val"]) == 0


@pytest.mark.parametrize("spec, frozen", [("stem,layer1", ("conv1.", "bn1.", "layer1.")), ("all", None)])
def test_frozen_parts_stay_unchanged(tmp_path: Path, init_file: Path, spec: str, frozen: tuple[str, ...] | None) -> None:
    data = photos(tmp_path / "photos", {"cat": 6, "dog": 6}, val=False)
    run = tmp_path / "run"
    assert main(["train", "--init", str(init_file), "--data", "folder", "--data-dir", str(data), "--out", str(run),
                 *TINY, "--set", f"freeze={spec}", "--set", "lr=0.5"]) == 0
    start = resnet.create_model("resnet8")
    resnet.load_pretrained(start, init_file)
    before = start.state_dict()
    after = _weights(run)
    for key, value in after.items():
        if key.endswith("num_batches_tracked"):
            continue
        stays = not key.startswith("fc.") if frozen is None else key.startswith(frozen)
        if stays:
            assert torch.equal(value, before[key]), f"{key} changed although frozen ({spec})"
    moving = [k for k in after if k.startswith("layer3.") and not k.endswith("num_batches_tracked")]
    changed = [k for k in moving if not torch.equal(after[k], before[k])]
    assert (changed == []) if frozen is None else changed, spec
    assert not torch.equal(after["fc.weight"][:2], before["fc.weight"][:2])


def test_group_plan_puts_the_backbone_at_a_lower_rate_and_leaves_frozen_tensors_out() -> None:
    model = resnet.create_model("resnet8", num_classes=3)
    freeze(model, "stem")
    recipe = get_recipe("finetune")
    plans = {p.name: p for p in group_plan(model, recipe, pretrained=True)}
    assert plans["head"].lr_scale == 1.0 and plans["backbone"].lr_scale == recipe.backbone_lr_scale < 1
    assert plans["backbone (no decay)"].weight_decay == 0.0
    listed = {id(p) for plan in plans.values() for p in plan.params}
    assert id(model.conv1.weight) not in listed and id(model.layer1[0].conv1.weight) in listed
    assert type(model.bn1).__name__ == "FrozenBatchNorm2d"
    assert all(p.lr_scale == 1.0 for p in group_plan(model, recipe, pretrained=False))


def test_resume_reproduces_an_uninterrupted_finetune(tmp_path: Path, init_file: Path) -> None:
    data = photos(tmp_path / "photos", {"cat": 6, "dog": 6}, val=False)
    base = dict(init=str(init_file), data="folder", data_dir=str(data), progress=False, tensorboard=False,
                overrides={"iterations": "4", "batch_size": "4", "image_size": "16", "eval_every": "100",
                           "core_replicas": "1", "precision": "fp32"})
    whole = train(TrainOptions(out=tmp_path / "whole", **base))
    train(TrainOptions(out=tmp_path / "split", stop_after=2, **base))
    resumed = train(TrainOptions(out=tmp_path / "split", resume=True, **base))
    assert resumed["finished"] and resumed["weights_digest"] == whole["weights_digest"]


def test_imagenet_style_named_weights_served_on_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """What a connected machine does with --init resnet50: download, check, take the weights' preprocessing."""
    files = Files()
    server, base = serve(files)
    try:
        torch.manual_seed(4)
        data_bytes = state_bytes(resnet.create_model("resnet8", num_classes=1000), wrap_akamaster=False)
        pre = Preprocess(IMAGENET_MEAN, IMAGENET_STD, 24, resize=28, crop=24, interpolation="bicubic")
        entry = entry_for(data_bytes, publisher="torchvision", num_classes=1000, preprocess=pre, dataset="imagenet-1k")
        files.blobs[f"/{entry.filename}"] = data_bytes
        monkeypatch.setattr(registry_module, "entries_for", lambda name: (entry,) if name == "resnet8" else ())
        monkeypatch.setenv("RESNET_WEIGHTS_MIRROR", base)
        data = photos(tmp_path / "photos", {"cat": 5, "dog": 5})
        run = tmp_path / "run"
        assert main(["train", "--init", "resnet8", "--data", "folder", "--data-dir", str(data), "--out", str(run), *QUICK]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert [p for p, _ in files.requests] == [f"/{entry.filename}"]
    meta = json.loads(Path(run / "summary.json").read_text())
    assert meta["init"] == "resnet8:test" and "(1000 classes (tench" in meta["init_note"]
    saved = Preprocess.from_dict(json.loads(_metadata(run / "last.safetensors"))["preprocess"])
    assert (saved.resize, saved.crop, saved.interpolation) == (28, 24, "bicubic")


def _metadata(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()["resnet"]


@pytest.mark.parametrize("case", ["empty", "one-class", "unreadable-class", "other-architecture", "unknown-tag",
                                  "no-network", "model-mismatch"])
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path: Path, init_file: Path, monkeypatch, capsys, case: str) -> None:
    root = tmp_path / "photos"
    init = str(init_file)
    extra: list[str] = []
    if case == "empty":
        (root / "train").mkdir(parents=True)
    elif case == "one-class":
        photos(root, {"cat": 4})
    elif case == "unreadable-class":
        photos(root, {"cat": 4, "dog": 4}, val=False)
        write(root / "train" / "owl" / "a.jpg", b"not a jpeg at all")
    else:
        photos(root, {"cat": 4, "dog": 4}, val=False)
    if case == "other-architecture":
        extra = ["--model", "resnet14"]
    elif case == "unknown-tag":
        init = "resnet20:akamastr_cifar10"
    elif case == "no-network":
        init = "resnet20"
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    elif case == "model-mismatch":
        init, extra = "resnet20", ["--model", "resnet32"]
    code = main(["train", "--init", init, "--data", "folder", "--data-dir", str(root), "--out", str(tmp_path / "run"),
                 *extra, *TINY])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and err.startswith("resnet train: error:"), err
    expected = {"empty": "has no class folders", "one-class": "only 1 class folder",
                "unreadable-class": "owl has no readable photo", "other-architecture": "does not fit resnet14",
                "unknown-tag": "closest: resnet20:akamaster_cifar10", "no-network": "`resnet weights import FILE --as resnet20:default`",
                "model-mismatch": "holds weights for resnet20, but --model is resnet32"}[case]
    assert expected in err
