"""Weights the Hugging Face way: ``resnet weights publish`` writes a Hub folder, ``hf-hub:owner/name`` loads it (and
timm's ResNet folders) through huggingface_hub's cache. The cache layout is built on disk; the network is never used
(HF_HUB_OFFLINE is on in every test)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import resnet
from resnet.cli import main
from resnet.deploy.publish import publish
from resnet.errors import CheckpointError, UsageError
from resnet.models.interop import save_weights

from deploy_helpers import randomise_bn

CLASSES = ["cat", "dog", "fox"]
PRE = {"mean": [0.5, 0.4, 0.3], "std": [0.25, 0.25, 0.25], "input_size": 32}


@pytest.fixture(autouse=True)
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache of this test's own, offline (huggingface_hub reads both at call time)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def cache_repo(cache: Path, repo: str, folder: Path, commit: str = "a" * 40) -> Path:
    """``folder``'s files as huggingface_hub caches a download of ``repo`` (refs/main → snapshots/COMMIT/)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    for f in folder.iterdir():
        shutil.copy(f, snapshot / f.name)
    return snapshot


@pytest.fixture
def run_folder(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    run = tmp_path / "runs" / "r8"
    run.mkdir(parents=True)
    model = randomise_bn(resnet.create_model("resnet8", num_classes=3))
    save_weights(model, run / "best.safetensors", {"classes": CLASSES, "dataset": "cifar10", "preprocess": PRE, "step": 40})
    summary = {"data": "cifar10", "train_images": 500, "steps": 40, "recipe": {"name": "cifar"},
               "final": {"train_error": 30.5, "holdout_error": None, "test_error": 41.25}, "best": None}
    (run / "summary.json").write_text(json.dumps(summary))
    return run, model.eval()


def test_publish_writes_config_weights_and_card(tmp_path: Path, run_folder: tuple[Path, torch.nn.Module]) -> None:
    run, model = run_folder
    out = publish(run, tmp_path / "hub", repo="me/r8-cifar", license="apache-2.0")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    ours = config["resnet"]
    assert ours["spec"]["layers"] == [1, 1, 1] and ours["spec"]["stem"] == "cifar" and ours["model"] == "resnet8"
    assert ours["classes"] == CLASSES and ours["preprocess"]["mean"] == PRE["mean"] and ours["results"]["final"]["test_error"] == 41.25
    assert config["architecture"] == "resnet8" and config["label_names"] == CLASSES
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32] and config["pretrained_cfg"]["std"] == PRE["std"]
    weights = load_file(out / "model.safetensors")
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: resnet" in front and "license: apache-2.0" in front and "- cifar10" in front
    assert "| final | test error | 41.25 % | 58.75 % |" in card and "500 training images" in card
    assert 'resnet.create_model("hf-hub:me/r8-cifar", pretrained=True)' in card


def test_hub_name_loads_offline_from_the_cache(tmp_path: Path, offline_cache: Path, run_folder: tuple[Path, torch.nn.Module]) -> None:
    run, model = run_folder
    cache_repo(offline_cache, "me/r8-cifar", publish(run, tmp_path / "hub"))
    loaded = resnet.create_model("hf-hub:me/r8-cifar", pretrained=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.preprocess.mean == tuple(PRE["mean"]) and loaded.pretrained == "hf-hub:me/r8-cifar"
    fresh = resnet.create_model("hf-hub:me/r8-cifar")  # the architecture only
    assert fresh.spec == loaded.spec and not torch.equal(fresh.conv1.weight, loaded.conv1.weight)
    head = resnet.create_model("hf-hub:me/r8-cifar", pretrained=True, num_classes=7)  # fine-tuning: a new classifier
    assert head.fc.out_features == 7 and torch.equal(head.conv1.weight, loaded.conv1.weight)


def test_predict_reads_a_hub_name(tmp_path: Path, offline_cache: Path, run_folder: tuple[Path, torch.nn.Module],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    run, _ = run_folder
    cache_repo(offline_cache, "me/r8-cifar", publish(run, tmp_path / "hub"))
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 36), (200, 120, 40)).save(photo)
    rc = main(["predict", "hf-hub:me/r8-cifar", str(photo), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert report["source"] == "hf-hub:me/r8-cifar" and report["model"] == "resnet8" and not report["errors"]
    top = report["predictions"][0]["top"]
    assert sorted(t["class"] for t in top) == sorted(CLASSES) and abs(sum(t["prob"] for t in top) - 1) < 1e-3


@pytest.mark.parametrize("serialization", ["both", False])
def test_a_folder_written_by_timm_loads(tmp_path: Path, offline_cache: Path, serialization: object) -> None:
    """timm's push_to_hf_hub writes config.json and model.safetensors (+ pytorch_model.bin); save_for_hf's default
    writes only pytorch_model.bin. Both load, with timm's preprocessing."""
    timm = pytest.importorskip("timm")
    from timm.models import save_for_hf

    torch.manual_seed(0)
    theirs = randomise_bn(timm.create_model("resnet18", pretrained=False, num_classes=5)).eval()
    folder = tmp_path / "timm"
    save_for_hf(theirs, str(folder), model_config={"label_names": list("abcde")}, safe_serialization=serialization)
    cache_repo(offline_cache, "someone/resnet18-five", folder)
    ours = resnet.create_model("hf-hub:someone/resnet18-five", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    cfg = theirs.pretrained_cfg
    assert ours.preprocess.crop_size == cfg["input_size"][-1] and ours.preprocess.mean == tuple(cfg["mean"])
    assert ours.preprocess.resize_size == round(cfg["input_size"][-1] / cfg["crop_pct"])


def test_wrong_or_missing_files_get_one_line_naming_them(tmp_path: Path, offline_cache: Path,
                                                         run_folder: tuple[Path, torch.nn.Module]) -> None:
    run, _ = run_folder
    snapshot = cache_repo(offline_cache, "me/r8-cifar", publish(run, tmp_path / "hub"))
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"^model\.safetensors of hf-hub:me/r8-cifar is not in the Hugging Face cache .* HF_HUB_OFFLINE=1") as err:
        resnet.create_model("hf-hub:me/r8-cifar", pretrained=True)
    assert "\n" not in str(err.value)
    (snapshot / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        resnet.create_model("hf-hub:me/r8-cifar", pretrained=True)
    (snapshot / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"^config\.json of hf-hub:me/r8-cifar .* is not valid JSON"):
        resnet.create_model("hf-hub:me/r8-cifar", pretrained=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match=r"neither a `resnet` section .* nor an `architecture`"):
        resnet.create_model("hf-hub:me/r8-cifar", pretrained=True)
    with pytest.raises(CheckpointError, match=r"^config\.json of hf-hub:me/absent is not in the Hugging Face cache"):
        resnet.create_model("hf-hub:me/absent", pretrained=True)
    with pytest.raises(UsageError, match=r"write it as hf-hub:owner/name"):
        resnet.create_model("hf-hub:no-owner", pretrained=True)


def test_cli_publish_and_push_errors(tmp_path: Path, run_folder: tuple[Path, torch.nn.Module],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = run_folder
    rc = main(["weights", "publish", str(run), str(tmp_path / "hub"), "--repo", "me/r8", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert json.loads(captured.out)["files"] == ["README.md", "config.json", "model.safetensors"]
    assert main(["weights", "publish", str(run), str(tmp_path / "hub2"), "--push"]) == 2
    assert "--push needs --repo" in capsys.readouterr().err
    rc = main(["weights", "publish", str(run), str(tmp_path / "hub3"), "--repo", "me/r8", "--push"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1 and "HF_HUB_OFFLINE" in err  # offline: nothing is sent
    assert main(["weights", "publish", str(tmp_path / "missing"), str(tmp_path / "hub4")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_push_uploads_the_three_files_with_a_token(tmp_path: Path, run_folder: tuple[Path, torch.nn.Module],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """--push goes through huggingface_hub (replaced here by a recorder: no network)."""
    import huggingface_hub
    from huggingface_hub import constants

    from resnet.deploy.publish import push

    calls: list[tuple[str, dict[str, object]]] = []

    class Recorder:
        def create_repo(self, repo: str, **kw: object) -> None:
            calls.append(("create_repo", {"repo": repo, **kw}))

        def upload_folder(self, **kw: object) -> None:
            calls.append(("upload_folder", kw))

    run, _ = run_folder
    folder = publish(run, tmp_path / "hub", repo="me/r8")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(resnet.errors.ResNetError, match="no Hugging Face token"):
        push(folder, "me/r8")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_test")
    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    assert push(folder, "me/r8", private=True) == "https://huggingface.co/me/r8"
    assert calls[0] == ("create_repo", {"repo": "me/r8", "private": True, "exist_ok": True})
    upload = calls[1][1]
    assert upload["repo_id"] == "me/r8" and upload["folder_path"] == str(folder)
    assert sorted(upload["allow_patterns"]) == ["README.md", "config.json", "model.safetensors"]
