"""Issue 14: no confident wrong answers. Real files made in the tests: rotated JPEGs with an EXIF
orientation tag, networks and data sets whose classes differ, int8 runs, exports, short runs."""

from __future__ import annotations

import io

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet import create_model
from resnet.cli import main
from resnet.models.interop import save_weights

CLASSES = ["apple", "boat", "cloud"]
PRE = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "input_size": 32, "resize": 36, "crop": 32}


def tiny_net(seed: int = 0, classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("resnet18", layers=(1, 1), widths=(8, 16), stem_width=8, num_classes=classes).eval()


def write_ckpt(path: Path, classes: list[str] = CLASSES, **meta: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(tiny_net(classes=len(classes)), path, {"classes": classes, "dataset": "synthetic", "preprocess": PRE, **meta})
    return path


def upright(h: int = 40, w: int = 64) -> np.ndarray:
    """Left half red, right half blue, a green bar at the top: every rotation looks different."""
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 2, 0] = 220
    a[:, w // 2 :, 2] = 220
    a[: h // 8, :, 1] = 220
    return a


def save_rotated_jpeg(array: np.ndarray, path: Path) -> Path:
    """Stored turned 90 degrees anticlockwise with EXIF orientation 6, as a phone held upright writes it."""
    img = Image.fromarray(array).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, quality=95, exif=exif)
    return path


def write_tree(root: Path, classes: list[str], splits: tuple[str, ...] = ("val",), per_class: int = 2) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for ci, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                a = rng.integers(0, 60, size=(40, 48, 3), dtype=np.uint8)
                a[..., ci % 3] += 150
                Image.fromarray(a).save(folder / f"{i}.png")
    return root


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- EXIF orientation: one decoder for every path ----------------------------------------------------
def test_every_decode_path_applies_the_exif_orientation(tmp_path: Path) -> None:
    from resnet.data.decode import decode_file, decode_image_tensor
    from resnet.data.folder import ImageFolderDataset
    from resnet.data.folder_arrays import read_image_folder
    from resnet.data.decode import read_image

    want = upright()
    (tmp_path / "train" / "cls").mkdir(parents=True)
    path = save_rotated_jpeg(want, tmp_path / "train" / "cls" / "photo.jpg")
    assert Image.open(path).size == (40, 64)  # stored sideways

    decoded = {
        "decode_file": torch.from_numpy(decode_file(path)).permute(2, 0, 1),
        "decode_image_tensor (training folders)": decode_image_tensor(path),
        "read_image (predict, eval)": read_image(path),
        "ImageFolderDataset": ImageFolderDataset(tmp_path, "train")[0][0],
        "read_image_folder (small-image folders)": read_image_folder(tmp_path / "train", workers=1).images[0],
    }
    expected = torch.from_numpy(want).permute(2, 0, 1).float()
    for name, image in decoded.items():
        assert tuple(image.shape) == (3, 40, 64), name
        assert (image.float() - expected).abs().mean() < 8, name  # JPEG noise only


def _jpeg_variants(tmp_path: Path) -> dict[str, bytes]:
    """JPEGs as users send them: every EXIF orientation, grey, CMYK, progressive, 4:4:4 and 4:2:0."""
    rng = np.random.default_rng(1)
    photo = np.clip(upright(48, 80).astype(int) + rng.integers(-30, 30, (48, 80, 3)), 0, 255).astype(np.uint8)
    out: dict[str, bytes] = {}
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        out[f"orientation {orientation}"] = _jpeg(Image.fromarray(photo), tmp_path, exif=exif)
    out["grey"] = _jpeg(Image.fromarray(photo).convert("L"), tmp_path)
    out["CMYK"] = _jpeg(Image.fromarray(photo).convert("CMYK"), tmp_path)
    out["progressive"] = _jpeg(Image.fromarray(photo), tmp_path, progressive=True)
    out["4:4:4"] = _jpeg(Image.fromarray(photo), tmp_path, subsampling=0)
    out["4:2:0"] = _jpeg(Image.fromarray(photo), tmp_path, subsampling=2)
    return out


def _jpeg(img: Image.Image, tmp_path: Path, **options: object) -> bytes:
    path = tmp_path / "variant.jpg"
    img.save(path, quality=90, **options)
    return path.read_bytes()


def test_uploads_decode_to_the_same_pixels_as_files_and_as_pillow(tmp_path: Path) -> None:
    """RGB and grey JPEGs go through libjpeg-turbo by simplejpeg, the rest through Pillow; uploads and files
    through the same decoder. Every variant, in every channel setting, must give Pillow's own pixels (EXIF applied)."""
    from PIL import ImageOps

    from resnet.data.decode import _libjpeg, decode_checked, read_image, read_image_bytes, to_array

    variants = _jpeg_variants(tmp_path)
    assert [name for name, data in variants.items() if _libjpeg(data, Image.open(io.BytesIO(data)), 3, None) is None] == ["CMYK"]
    for name, data in variants.items():
        path = tmp_path / "file.jpg"
        path.write_bytes(data)
        from_file, uploaded = read_image(path), read_image_bytes(data)
        assert torch.equal(uploaded, from_file), name
        for channels in (3, 1, None):
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                want = to_array(ImageOps.exif_transpose(img), channels)
            got = decode_checked(data, channels)
            assert got.damaged is None and np.array_equal(got.pixels, want), (name, channels)


@pytest.mark.parametrize("fmt, options", [("PNG", {}), ("WEBP", {"lossless": True}), ("WEBP", {"quality": 80}), ("GIF", {})])
def test_png_webp_and_gif_decode_to_pillows_pixels_with_exif_applied(fmt: str, options: dict, tmp_path: Path) -> None:
    """8-bit RGB PNGs and RGB WebPs go through TorchCodec (faster), GIFs through Pillow: the same pixels either way."""
    from PIL import ImageOps

    from resnet.data.decode import _torchcodec, decode_checked, to_array

    photo = np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for orientation in (1, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, fmt, **({} if fmt == "GIF" else {"exif": exif}), **options)
        data = buf.getvalue()
        assert (_torchcodec(data, Image.open(io.BytesIO(data)), 3) is not None) == (fmt != "GIF")
        for channels in (3, 1, None):
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                want = to_array(ImageOps.exif_transpose(img), channels)
            got = decode_checked(data, channels)
            assert got.damaged is None and np.array_equal(got.pixels, want), (orientation, channels)
    if fmt != "WEBP":  # libwebp cannot decode a truncated file at all: that is an undecodable file, not a damaged one
        damaged = decode_checked(data[: len(data) * 2 // 3])  # not whole: Pillow pads it, and says so
        assert damaged.damaged and "truncated" in damaged.damaged


def test_a_truncated_jpeg_upload_decodes_marked_damaged_as_a_truncated_file_does(tmp_path: Path) -> None:
    from resnet.data.decode import DAMAGED, DecodeFailure, decode_file, read_image, read_image_checked
    from resnet.errors import DataError

    data = _jpeg_variants(tmp_path)["orientation 1"]
    half = tmp_path / "half.jpg"
    half.write_bytes(data[: len(data) // 2])
    assert read_image_checked(data[: len(data) // 2]).damaged == "Premature end of JPEG file"
    with pytest.raises(DataError, match=f"image {half} is damaged .Premature end of JPEG file"):
        read_image(half)  # eval, explain, calibration: refused in one line naming the file
    with pytest.raises(DecodeFailure, match=f"^{DAMAGED}Premature end of JPEG file"):
        decode_file(half)  # data sets: skipped and counted as damaged


def test_a_photo_gets_the_same_answer_upright_and_rotated_with_exif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_ckpt(tmp_path / "net.safetensors")
    photo = upright(48, 80)
    Image.fromarray(photo).save(tmp_path / "upright.jpg", quality=95)
    save_rotated_jpeg(photo, tmp_path / "rotated.jpg")
    rc, out, err = run_cli(["predict", str(ckpt), str(tmp_path / "upright.jpg"), str(tmp_path / "rotated.jpg"), "--json"], capsys)
    assert rc == 0, err
    a, b = (p["top"] for p in json.loads(out)["predictions"])
    assert [x["class"] for x in a] == [x["class"] for x in b]
    assert all(abs(x["prob"] - y["prob"]) < 0.02 for x, y in zip(a, b))


# -- model names without weights ---------------------------------------------------------------------
def test_model_name_without_weights_refuses_in_every_command_that_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(upright()).save(tmp_path / "p.png")
    write_tree(tmp_path / "data", CLASSES)
    for name, expected in (("plain20", "no trained weights"), ("resnet20", "name the weights: resnet20:akamaster_cifar10")):
        for command in (["predict", name, str(tmp_path / "p.png")], ["eval", name, "--data-dir", str(tmp_path / "data")],
                        ["export", name, "--out", str(tmp_path / "x.onnx")]):
            rc, out, err = run_cli(command, capsys)
            assert rc == 1 and out == "", command
            assert expected in one_line(err) and "class_" not in err, command
    assert not (tmp_path / "x.onnx").exists()
    assert not (tmp_path / "x.onnx").exists()


def test_bench_still_times_random_weights() -> None:
    from resnet.evaluate.sources import resolve_source

    member = resolve_source("resnet8", random_weights=True)
    assert member.kind == "random" and member.model_name == "resnet8"


# -- int8 calibration never from the inputs -----------------------------------------------------------
def test_int8_prediction_does_not_depend_on_the_other_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write_tree(tmp_path / "data", CLASSES, splits=("train",))
    ckpt = write_ckpt(tmp_path / "run" / "best.safetensors", dataset="imagenet", data_dir=str(train))
    Image.fromarray(upright()).save(tmp_path / "a.png")
    Image.fromarray(255 - upright()).save(tmp_path / "b.png")

    def probs(*files: Path) -> list[dict]:
        rc, out, err = run_cli(["predict", str(ckpt), *map(str, files), "--optimize", "int8", "--json"], capsys)
        assert rc == 0, err
        return json.loads(out)["predictions"][0]["top"]

    assert probs(tmp_path / "a.png") == probs(tmp_path / "a.png", tmp_path / "b.png")


def test_int8_without_recorded_training_data_asks_for_calibration_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_ckpt(tmp_path / "net.safetensors")  # dataset "synthetic", no data folder recorded
    Image.fromarray(upright()).save(tmp_path / "a.png")
    rc, out, err = run_cli(["predict", str(ckpt), str(tmp_path / "a.png"), "--optimize", "int8"], capsys)
    assert rc == 1 and "records no training data" in one_line(err)
    calib = write_tree(tmp_path / "calib", CLASSES, splits=("x",))
    rc, out, err = run_cli(["predict", str(ckpt), str(tmp_path / "a.png"), "--optimize", "int8", "--calibration", str(calib)], capsys)
    assert rc == 0, err


def test_calibration_batch_comes_from_the_recorded_training_split_not_the_test_set(tmp_path: Path) -> None:
    from resnet.inference.calibration import calibration_batch, recorded_data
    from resnet.evaluate.sources import resolve_source

    data = write_tree(tmp_path / "data", CLASSES, splits=("train", "test"))
    for f in (data / "test").rglob("*.png"):  # the test images are black: calibrating on them would show
        Image.fromarray(np.zeros((40, 48, 3), dtype=np.uint8)).save(f)
    member = resolve_source(str(write_ckpt(tmp_path / "n.safetensors", dataset="imagenet", data_dir=str(data))))
    assert recorded_data(member) is not None and recorded_data(member).data_dir == str(data)
    batch = calibration_batch(member)
    assert batch.shape == (6, 3, 32, 32) and batch.std() > 0.3


# -- classes compared by name; splits never taken for classes; the run's own data ---------------------
def test_eval_refuses_a_network_trained_on_other_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_ckpt(tmp_path / "net.safetensors", classes=["zero", "one", "two"])
    data = write_tree(tmp_path / "data", CLASSES)
    rc, out, err = run_cli(["eval", str(ckpt), "--data-dir", str(data)], capsys)
    line = one_line(err)
    assert rc == 1 and "other classes" in line and "apple" in line and "zero, one, two" in line


def test_eval_reorders_the_same_classes_in_another_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A network whose outputs are (cloud, apple, boat) scores on data in the order (apple, boat, cloud) exactly as
    the same network with its classifier rows put in the data's order; taken by position, it would score otherwise."""
    data = write_tree(tmp_path / "data", CLASSES, per_class=4)
    order = ["cloud", "apple", "boat"]
    net = tiny_net()
    save_weights(net, tmp_path / "other_order.safetensors", {"classes": order, "dataset": "synthetic", "preprocess": PRE})
    rows = torch.tensor([order.index(c) for c in CLASSES])
    with torch.no_grad():  # the same network, its outputs in the data's order
        net.fc.weight.copy_(net.fc.weight[rows].clone())
        net.fc.bias.copy_(net.fc.bias[rows].clone())
    save_weights(net, tmp_path / "data_order.safetensors", {"classes": CLASSES, "dataset": "synthetic", "preprocess": PRE})
    save_weights(tiny_net(), tmp_path / "by_position.safetensors", {"classes": CLASSES, "dataset": "synthetic", "preprocess": PRE})

    def per_class(name: str) -> dict[str, float]:
        rc, out, err = run_cli(["eval", str(tmp_path / name), "--data-dir", str(data), "--json"], capsys)
        assert rc == 0, err
        report = json.loads(out)
        assert report["classes"] == CLASSES and report["images"] == 12
        return report["members"][0]["per_class_acc"]

    reordered = per_class("other_order.safetensors")
    assert reordered == per_class("data_order.safetensors")
    assert reordered != per_class("by_position.safetensors")  # the test could fail: position alone answers otherwise


def test_split_folders_are_never_taken_for_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_ckpt(tmp_path / "net.safetensors")
    data = write_tree(tmp_path / "data", CLASSES, splits=("train", "test"))
    rc, out, err = run_cli(["eval", str(ckpt), "--data-dir", str(data), "--split", "val"], capsys)
    line = one_line(err)
    assert rc == 1 and "no val/ folder" in line and "train, test" in line
    rc, out, err = run_cli(["eval", str(ckpt), "--data-dir", str(data), "--json"], capsys)  # default: test/
    assert rc == 0 and json.loads(out)["images"] == 6 and "test" in json.loads(out)["data"]


def test_eval_of_a_run_needs_no_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_tree(tmp_path / "data", CLASSES, splits=("train", "val"))
    run = tmp_path / "runs" / "r"
    write_ckpt(run / "best.safetensors", dataset="imagenet", data_dir=str(data))
    rc, out, err = run_cli(["eval", str(run), "--json"], capsys)
    assert rc == 0, err
    report = json.loads(out)
    assert report["images"] == 6 and str(data / "val") in report["data"]


# -- errors speak only of flags the command has --------------------------------------------------------
def test_library_errors_name_no_flag_the_command_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_ckpt(tmp_path / "net.safetensors")
    Image.fromarray(upright()).save(tmp_path / "a.png")
    rc, _, err = run_cli(["predict", str(ckpt), str(tmp_path / "a.png"), "--protocol", "10crop", "--resize", "32"], capsys)
    line = one_line(err)
    assert rc == 2 and "--resize 32 --crop 28" in line
    from resnet.data import load_arrays
    from resnet.errors import DataError

    with pytest.raises(DataError) as info:
        load_arrays("cifar10", "test", tmp_path / "nothing-here")
    assert "download=True" not in str(info.value) and "https://" in str(info.value)


# -- warnings ----------------------------------------------------------------------------------------
def test_a_large_photo_decodes_without_a_raw_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 64 - 1)  # the photo is just over the limit, as a 12000x12000 one is
    ckpt = write_ckpt(tmp_path / "net.safetensors")
    Image.fromarray(upright()).save(tmp_path / "big.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc, out, err = run_cli(["predict", str(ckpt), str(tmp_path / "big.png")], capsys)
    assert rc == 0 and err == "" and "big.png" in out


def test_warnings_reach_the_terminal_as_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import resnet.cli.cmd_list as cmd_list

    def noisy(args: object) -> int:
        for _ in range(3):
            warnings.warn("something odd\nsecond line", UserWarning)
        return 0

    monkeypatch.setattr(cmd_list, "run", noisy)
    rc, out, err = run_cli(["list"], capsys)
    assert rc == 0 and err == "resnet list: warning: something odd\n"


def test_curves_of_a_short_run_warn_nothing_and_show_the_loss(tmp_path: Path) -> None:
    from resnet.train.report import plot_curves

    records = [{"kind": "eval", "step": 5, "train_error": 80.0, "train_loss": 2.1, "holdout_error": None, "test_error": 70.0}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend"
        assert plot_curves(records, tmp_path / "c.png", "short") == tmp_path / "c.png"


def test_experiment_figures_of_runs_without_points_warn_nothing(tmp_path: Path) -> None:
    from resnet.analysis.plots import plot_degradation

    curves = [{"depth": 20, "residual": r, "train": [], "test": [[10, None]]} for r in (False, True)]  # started, not evaluated
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_degradation(curves, tmp_path / "d.png").is_file()


# -- export ------------------------------------------------------------------------------------------
def test_export_format_follows_the_file_name_and_carries_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from resnet.deploy.export import read_export_metadata

    ckpt = write_ckpt(tmp_path / "net.safetensors")
    rc, out, err = run_cli(["export", str(ckpt), "--out", str(tmp_path / "model.pt"), "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["format"] == "torchscript"
    assert (tmp_path / "model.pt").read_bytes()[:2] == b"PK"  # a TorchScript zip archive, not ONNX protobuf
    with pytest.warns(FutureWarning, match="TorchScript export is deprecated"):
        meta = read_export_metadata(tmp_path / "model.pt")
    assert json.loads(meta["classes"]) == CLASSES and json.loads(meta["mean"]) == PRE["mean"]

    rc, out, err = run_cli(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "other.pt")], capsys)
    assert rc == 2 and "means torchscript" in one_line(err) and not (tmp_path / "other.pt").exists()

    rc, out, err = run_cli(["export", str(ckpt), "--out", str(tmp_path / "model.onnx")], capsys)
    assert rc == 0, err
    meta = read_export_metadata(tmp_path / "model.onnx")
    assert json.loads(meta["classes"]) == CLASSES and json.loads(meta["crop"]) == 32
    assert json.loads(meta["resnet"])["preprocess"]["std"] == PRE["std"]
