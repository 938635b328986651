"""Loading other projects' checkpoints, safely."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnet
from resnet.errors import CheckpointError
from resnet.models.interop import load_pretrained, model_from_checkpoint, read_state_dict, save_weights
from resnet.reference import AKAMASTER_ERR, IMAGENET_MEAN, IMAGENET_STD


def _akamaster_file(akamaster_dir: Path, depth: int) -> Path:
    return next(akamaster_dir.glob(f"resnet{depth}-*.th"))


@pytest.mark.parametrize("depth", sorted(AKAMASTER_ERR))
def test_akamaster_checkpoints_load_without_missing_or_unexpected_keys(akamaster_dir: Path, depth: int) -> None:
    sd, meta = read_state_dict(_akamaster_file(akamaster_dir, depth))
    assert "best_prec1" in meta
    model = resnet.create_model(f"resnet{depth}")
    load_pretrained(model, _akamaster_file(akamaster_dir, depth), source="akamaster")
    own = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    mapped = {k.removeprefix("module.").replace("linear.", "fc.") for k in sd}
    assert own == mapped


def _first_test_images(cifar10_dir: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of the official test order (the file name is the official index)."""
    classes = sorted(p.name for p in (cifar10_dir / "test").iterdir())
    files = [(int(f.stem), ci, f) for ci, c in enumerate(classes) for f in (cifar10_dir / "test" / c).glob("*.png")]
    files.sort()
    files = files[:n]
    x = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for _, _, f in files])).permute(0, 3, 1, 2)
    y = torch.tensor([ci for _, ci, _ in files])
    return x, y


@pytest.fixture(scope="module")
def first_2000(cifar10_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return _first_test_images(cifar10_dir, 2000)


@pytest.mark.parametrize("depth", sorted(AKAMASTER_ERR))
def test_akamaster_accuracy_on_first_2000_test_images(akamaster_dir: Path, first_2000, depth: int) -> None:
    x_u8, y = first_2000
    assert y[:5].tolist() == [3, 8, 8, 0, 6]  # official test order
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (x_u8.float() / 255 - mean) / std
    model = resnet.create_model(f"resnet{depth}").eval()
    load_pretrained(model, _akamaster_file(akamaster_dir, depth))  # source detected from the keys
    with torch.no_grad():  # in batches of 500: faster here than one 2000-image batch (less fresh memory to fault in)
        acc = (torch.cat([model(chunk) for chunk in x.split(500)]).argmax(1) == y).float().mean().item() * 100
    expected = 100 - AKAMASTER_ERR[depth]
    assert abs(acc - expected) <= 1.5, f"resnet{depth}: {acc:.2f}% vs {expected:.2f}% implied by the reported error"


def test_timm_checkpoint_loads_and_matches(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("resnet50", pretrained=False).eval()
    path = tmp_path / "timm_resnet50.pth"
    torch.save(theirs.state_dict(), path)
    ours = resnet.create_model("resnet50").eval()
    load_pretrained(ours, path, source="timm")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() <= 1e-5


def test_wrapped_and_prefixed_state_dicts(tmp_path: Path) -> None:
    src = resnet.create_model("resnet20")
    path = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = resnet.create_model("resnet20")
    load_pretrained(dst, path)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)


def test_our_safetensors_round_trip_rebuilds_architecture(tmp_path: Path) -> None:
    src = resnet.create_model("resnet32", num_classes=100, shortcut="B").eval()
    path = tmp_path / "w.safetensors"
    save_weights(src, path, {"classes": [str(i) for i in range(100)]})
    model, meta = model_from_checkpoint(path)
    assert meta["classes"][:2] == ["0", "1"] and meta["spec"]["shortcut"] == "B"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), src(x))


def test_mismatched_architecture_lists_keys_and_shapes(akamaster_dir: Path) -> None:
    model = resnet.create_model("resnet32")
    with pytest.raises(CheckpointError) as err:
        load_pretrained(model, _akamaster_file(akamaster_dir, 20))
    msg = str(err.value)
    assert "missing key(s)" in msg and "layer1.3.conv1.weight" in msg


def test_shape_mismatch_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "c100.safetensors"
    save_weights(resnet.create_model("resnet20", num_classes=100), path)
    with pytest.raises(CheckpointError, match=r"fc.weight: checkpoint \(100, 64\) vs model \(10, 64\)"):
        load_pretrained(resnet.create_model("resnet20"), path)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("suffix", [".pth", ".th", ".bin"])
def test_code_executing_pickle_is_refused(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _Evil(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_pretrained(resnet.create_model("resnet20"), path)
    raw = tmp_path / f"raw{suffix}"
    raw.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(CheckpointError):
        load_pretrained(resnet.create_model("resnet20"), raw)
    assert not marker.exists()


def test_empty_truncated_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_state_dict(empty)
    good = tmp_path / "good.safetensors"
    save_weights(resnet.create_model("resnet20"), good)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        read_state_dict(cut)
    torch.save(resnet.create_model("resnet20").state_dict(), tmp_path / "good.pth")
    cut_pth = tmp_path / "cut.pth"
    cut_pth.write_bytes((tmp_path / "good.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError):
        read_state_dict(cut_pth)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint origin"):
        load_pretrained(resnet.create_model("resnet20"), good, source="caffe")


def test_mismatch_error_stays_on_one_line_for_keys_with_control_characters(tmp_path: Path) -> None:
    # Found by the property test: a key "\n" in an untrusted file broke the one-line error.
    path = tmp_path / "weights.pth"
    torch.save({"\n": torch.zeros(1), "bad\tkey": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError) as err:
        resnet.load_pretrained(resnet.create_model("resnet8"), path)
    message = str(err.value)
    assert "\n" not in message and "\t" not in message
    assert "'\\n'" in message and "'bad\\tkey'" in message and "unexpected key(s)" in message
