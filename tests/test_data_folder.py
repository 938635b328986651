"""ImageNet-layout folders: odd image modes, skipping bad files, transforms, the folder loader."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.data import (
    DataWarning,
    ImageFolderDataset,
    Lighting,
    imagenet_eval_transform,
    imagenet_train_transform,
    make_folder_loader,
)
from resnet.data.decode import decode_file
from resnet.data.transforms import IMAGENET_EIGVAL, IMAGENET_EIGVEC
from resnet.errors import DataError

# torchvision 0.29 deprecates its decoders (still working) on every call; resnet.data falls back to Pillow.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities of TorchVision:DeprecationWarning"
)

RGB = (200, 40, 90)


def save(path: Path, img: Image.Image, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)
    return path


def odd_images(root: Path) -> dict[str, Path]:
    """One image of each awkward kind, in class folder 'odd' of root/train."""
    base = root / "train" / "odd"
    grey16 = Image.fromarray(np.full((10, 12), 0xAB00 + 0x7F, dtype=np.uint16))
    rgba = Image.new("RGBA", (12, 10), (*RGB, 7))
    palette = Image.new("RGB", (12, 10), RGB).convert("P", palette=Image.Palette.ADAPTIVE)
    return {
        "grey": save(base / "grey.png", Image.new("L", (12, 10), 77)),
        "rgba": save(base / "rgba.png", rgba),
        "cmyk": save(base / "cmyk.jpg", Image.new("CMYK", (12, 10), (0, 255, 255, 0)), "JPEG"),
        "grey16": save(base / "grey16.png", grey16),
        "palette": save(base / "palette.png", palette),
    }


def sample_for(ds: ImageFolderDataset, path: Path) -> torch.Tensor:
    index = [p for p, _ in ds.samples].index(path)
    item = ds[index]
    assert item is not None
    return item[0]


def test_every_mode_becomes_8bit_rgb(tmp_path: Path) -> None:
    files = odd_images(tmp_path)
    ds = ImageFolderDataset(tmp_path, "train")
    for kind, path in files.items():
        img = sample_for(ds, path)
        assert img.dtype == torch.uint8 and tuple(img.shape) == (3, 10, 12), kind
    assert sample_for(ds, files["grey"]).unique().tolist() == [77]
    assert sample_for(ds, files["grey16"]).unique().tolist() == [0xAB]  # scaled, not clipped at 255
    assert sample_for(ds, files["rgba"])[:, 0, 0].tolist() == list(RGB)
    assert sample_for(ds, files["palette"])[:, 0, 0].tolist() == list(RGB)
    red = sample_for(ds, files["cmyk"])[:, 5, 5].tolist()  # C=0 M=Y=255: red, give or take JPEG
    assert red[0] > 230 and red[1] < 25 and red[2] < 25
    assert ds.skipped == [] and ds.classes == ["odd"]


def test_pillow_path_agrees_on_every_mode(tmp_path: Path) -> None:
    # load_arrays decodes small images with Pillow in worker processes; it must read the same pixels.
    files = odd_images(tmp_path)
    ds = ImageFolderDataset(tmp_path, "train")
    for kind, path in files.items():
        via_pillow = torch.from_numpy(decode_file(path, channels=3)).permute(2, 0, 1)
        assert torch.equal(via_pillow, sample_for(ds, path)), kind
    assert decode_file(files["grey16"], channels=None).shape == (10, 12, 1)
    assert decode_file(files["rgba"], channels=None).shape == (10, 12, 3)


def make_with_bad_files(root: Path) -> None:
    for cls in ("cat", "dog"):
        for k in range(3):
            save(root / "train" / cls / f"{k}.png", Image.new("RGB", (16, 16), (k * 40, 10, 20)))
    (root / "train" / "cat" / "empty.png").write_bytes(b"")
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    (root / "train" / "dog" / "fake.jpg").write_bytes(b"this is text, not a JPEG")
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, "PNG")
    (root / "train" / "dog" / "truncated.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])


def test_bad_files_are_skipped_reported_and_counted(tmp_path: Path) -> None:
    make_with_bad_files(tmp_path)
    with pytest.warns(DataWarning) as scan_warnings:
        ds = ImageFolderDataset(tmp_path, "train")
    assert {Path(p).name for p, _ in ds.skipped} == {"empty.png", "notes.txt"}
    assert any("empty.png" in str(w.message) for w in scan_warnings)
    with pytest.warns(DataWarning):
        items = [ds[i] for i in range(len(ds))]
    assert sum(item is None for item in items) == 2
    assert {Path(p).name for p, _ in ds.skipped} == {"empty.png", "notes.txt", "fake.jpg", "truncated.png"}
    ds[[p.name for p, _ in ds.samples].index("fake.jpg")]  # seen again: counted once
    assert len(ds.skipped) == 4


def test_strict_raises_at_the_first_bad_file(tmp_path: Path) -> None:
    make_with_bad_files(tmp_path)
    with pytest.raises(DataError, match=r"empty\.png|notes\.txt"):
        ImageFolderDataset(tmp_path, "train", strict=True)
    (tmp_path / "train" / "cat" / "empty.png").unlink()
    (tmp_path / "train" / "dog" / "notes.txt").unlink()
    ds = ImageFolderDataset(tmp_path, "train", strict=True)
    with pytest.raises(DataError, match=r"fake\.jpg"):
        ds[[p.name for p, _ in ds.samples].index("fake.jpg")]


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_drops_bad_files_and_counts_them_from_workers(tmp_path: Path, workers: int) -> None:
    make_with_bad_files(tmp_path)
    with pytest.warns(DataWarning):
        loader = make_folder_loader(tmp_path, "train", 4, train=False, workers=workers, image_size=16)
        batches = list(loader)
    labels = torch.cat([y for _, y in batches])
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert all(x.dtype == torch.float32 and tuple(x.shape[1:]) == (3, 16, 16) for x, _ in batches)
    assert {Path(p).name for p, _ in loader.dataset.skipped} == {"empty.png", "notes.txt", "fake.jpg", "truncated.png"}


def test_training_loader_shuffles_per_epoch_deterministically(tmp_path: Path) -> None:
    for k in range(12):
        save(tmp_path / "train" / f"c{k % 3}" / f"{k}.png", Image.new("RGB", (20, 24), (k * 20, 0, 0)))
    def order(epoch: int, seed: int = 0) -> list[int]:
        loader = make_folder_loader(tmp_path, "train", 4, train=True, workers=0, image_size=16, seed=seed)
        loader.set_epoch(epoch)
        return [int(v) for _, y in loader for v in y]
    assert order(1) == order(1) and order(1) != order(2)
    loader = make_folder_loader(tmp_path, "train", 5, train=True, workers=0, image_size=16)
    assert len(loader) == 2 and all(len(y) == 5 for _, y in loader)  # drop_last in training


def test_missing_or_empty_folders_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "nothing")):
        ImageFolderDataset(tmp_path / "nothing")
    (tmp_path / "d" / "val" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        ImageFolderDataset(tmp_path / "d", "val")
    with pytest.raises(DataError, match="train/ does not exist"):
        ImageFolderDataset(tmp_path / "d", "train")


def test_train_and_eval_transforms_shapes_and_normalisation() -> None:
    torch.manual_seed(0)
    img = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    out = imagenet_train_transform()(img)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 224, 224)
    white = torch.full((3, 300, 400), 255, dtype=torch.uint8)
    plain = imagenet_eval_transform(resize=256, crop=224, mean=(0, 0, 0), std=(1, 1, 1))(white)
    assert tuple(plain.shape) == (3, 224, 224) and torch.allclose(plain, torch.ones_like(plain))
    small = imagenet_train_transform(scale=(40, 60), crop=32, lighting=0.0)(img)
    assert tuple(small.shape) == (3, 32, 32)


def test_lighting_adds_the_pca_offset_per_image() -> None:
    gen = torch.Generator().manual_seed(11)
    img = torch.rand(2, 3, 5, 5)
    out = Lighting(0.1, generator=gen)(img)
    alpha = torch.randn((2, 3), generator=torch.Generator().manual_seed(11)) * 0.1
    for b in range(2):
        for c in range(3):
            offset = sum(IMAGENET_EIGVEC[c][j] * float(alpha[b, j]) * IMAGENET_EIGVAL[j] for j in range(3))
            torch.testing.assert_close(out[b, c] - img[b, c], torch.full((5, 5), offset), rtol=0, atol=1e-6)
    assert torch.equal(Lighting(0.0)(img), img)
