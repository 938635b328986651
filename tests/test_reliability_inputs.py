"""Hostile and broken input (issue 7): nothing runs foreign code, nothing ends in a traceback.

Every loading path is fed crafted pickles that would create a marker file; broken checkpoints, data
folders, images and option values must each give a one-line error that names the thing and the fix,
with exit status 2 for usage errors and 1 for runtime errors. docs/reliability.md lists every case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_helpers import evil_state_file, odd_images, payloads, write_evil_checkpoints
from safetensors.torch import save

import resnet
from resnet.cli import main
from resnet.data import load_arrays, make_folder_loader
from resnet.data.cifar import CIFAR_SPECS
from resnet.data.safe_pickle import restricted_loads
from resnet.errors import CheckpointError, DataError, UsageError
from resnet.models.interop import load_pretrained, model_from_checkpoint, read_state_dict, save_weights
from resnet.train import TrainOptions, train

DIGITS = [str(i) for i in range(10)]


def untrained(path: Path, classes: int = 10) -> Path:
    """A checkpoint of an untrained resnet8 with no class names or data set recorded: a file to point
    eval / predict at (a bare model name is refused since issue 14: it has no trained weights)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(resnet.create_model("resnet8", num_classes=classes), path)
    return path


@pytest.fixture(scope="module")
def r8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return untrained(tmp_path_factory.mktemp("r8") / "r8.safetensors")


# -- helpers --------------------------------------------------------------------------------------------
def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Run ``resnet ARGV`` in this process; (exit status, stdout, stderr). Tracebacks fail the test."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exit_:
        rc = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out, err
    return rc, out, err


def one_line_error(err: str, command: str, *needles: str) -> str:
    """The single error line of ``resnet COMMAND``, checked to contain every needle."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith((f"resnet {command}: error:", "resnet: error:"))]
    assert len(errors) == 1, err
    if errors[0].startswith(f"resnet {command}: error:"):
        assert len(lines) == 1, err  # our own errors: exactly one line, nothing else
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good checkpoints of every kind the loaders accept, and a small image."""
    from PIL import Image

    root = tmp_path_factory.mktemp("good")
    out: dict[str, Path] = {"root": root}
    ours = resnet.create_model("resnet8", num_classes=10, in_chans=1)
    out["ours"] = root / "digits8.safetensors"
    save_weights(ours, out["ours"], {"classes": DIGITS, "dataset": "digits",
                                     "preprocess": {"mean": [0.5], "std": [0.25], "input_size": 32}})
    rgb = resnet.create_model("resnet8", num_classes=10)
    out["rgb"] = root / "rgb8.safetensors"
    save_weights(rgb, out["rgb"], {"classes": [f"c{i}" for i in range(10)]})
    out["tv"] = root / "resnet20-tv.pth"
    torch.save(resnet.create_model("resnet20").state_dict(), out["tv"])
    out["aka"] = root / "resnet20-aka.th"
    aka = {("module." + k.replace("fc.", "linear.")): v for k, v in resnet.create_model("resnet20").state_dict().items()}
    torch.save({"state_dict": aka, "best_prec1": 91.7}, out["aka"])
    out["image"] = root / "digit.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)).save(out["image"])
    return out


# -- security: crafted pickles never run ---------------------------------------------------------------------
def test_the_crafted_pickles_really_would_run_code(tmp_path: Path) -> None:
    """The payloads are live: plain pickle.loads creates the marker. (Otherwise the tests below prove nothing.)"""
    for name in ("open", "exec", "system"):
        marker = tmp_path / f"live-{name}"
        pickle.loads(pickle.dumps(payloads(marker)[name], protocol=2))
        assert marker.exists(), name


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    root = tmp_path_factory.mktemp("evil")
    marker = root / "MARKER"
    return write_evil_checkpoints(root / "files", marker), marker


def test_crafted_pickles_are_refused_by_every_library_loader(evil: tuple[list[Path], Path]) -> None:
    paths, marker = evil
    assert len(paths) == 12
    for path in paths:
        with pytest.raises(CheckpointError, match=r"refused to load .*nothing.* run") as err:
            read_state_dict(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value) and "\x1b" not in str(err.value)
        assert "weights_only` set to `False`" not in str(err.value)  # never PyTorch's advice to load it anyway
        for source in ("auto", "torchvision", "timm", "akamaster", "resnet"):
            with pytest.raises(CheckpointError, match="refused"):
                load_pretrained(resnet.create_model("resnet20"), path, source=source)
        with pytest.raises(CheckpointError, match="refused"):
            model_from_checkpoint(path)
    assert not marker.exists()


def test_crafted_pickles_are_refused_by_eval_predict_and_export(
    evil: tuple[list[Path], Path], files: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    paths, marker = evil
    for path in paths[::2] + paths[1:4]:  # every payload and every container
        for argv in (["eval", path, "--data", "digits"], ["predict", path, files["image"]],
                     ["export", path, "--out", tmp_path / "x.onnx"], ["eval", path, "--model", "resnet20", "--data", "digits"]):
            rc, _, err = cli(capsys, *argv)
            assert rc == 1, (argv, err)
            one_line_error(err, argv[0], "refused to load", str(path))
    assert not marker.exists() and not (tmp_path / "x.onnx").exists()


def test_crafted_training_state_is_refused_on_resume(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    out = tmp_path / "run"
    out.mkdir()
    evil_state_file(out / "last.state.pt", marker)
    opts = TrainOptions(model="resnet8", data="digits", out=out, resume=True, progress=False, tensorboard=False)
    with pytest.raises(CheckpointError, match="refused without running it") as err:
        train(opts)
    assert "GLOBAL" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def _cifar_folder(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        batch = {b"labels": rng.integers(0, 10, 4).tolist(), b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return folder


def _trust(monkeypatch: pytest.MonkeyPatch, folder: Path, archive: Path | None = None) -> None:
    """Make the files in ``folder`` the 'official' ones, so only the unpickler stands in the way."""
    spec = CIFAR_SPECS["cifar10"]
    md5 = lambda p: hashlib.md5(p.read_bytes()).hexdigest()  # noqa: E731
    changes: dict[str, object] = {
        "train_files": tuple((f, md5(folder / f)) for f, _ in spec.train_files),
        "test_files": tuple((f, md5(folder / f)) for f, _ in spec.test_files),
        "meta_file": (spec.meta_file[0], md5(folder / spec.meta_file[0])),
    }
    if archive is not None:
        changes["archive_md5"] = md5(archive)
    monkeypatch.setitem(CIFAR_SPECS, "cifar10", dataclasses.replace(spec, **changes))


@pytest.mark.parametrize("payload", ["open", "exec", "system"])
@pytest.mark.parametrize("form", ["extracted", "archive"])
def test_crafted_cifar_pickles_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: str, form: str) -> None:
    marker = tmp_path / "MARKER"
    folder = _cifar_folder(tmp_path / "src")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": payloads(marker)[payload], b"labels": [0]}, protocol=2))
    source: Path = folder
    if form == "archive":
        source = tmp_path / "cifar-10-python.tar.gz"
        with tarfile.open(source, "w:gz") as tar:
            tar.add(folder, arcname=folder.name)
    # Without matching checksums the file is refused before it is even unpickled ...
    with pytest.raises(DataError, match="MD5"):
        load_arrays("cifar10", "test", source, cache_dir=tmp_path / "cache")
    # ... and with them, the restricted unpickler refuses it.
    _trust(monkeypatch, folder, source if form == "archive" else None)
    with pytest.raises(DataError, match="refused unread") as err:
        load_arrays("cifar10", "test", source, cache_dir=tmp_path / "cache")
    assert "fetch the official archive again" in str(err.value)
    with pytest.raises(DataError, match="not allowed"):
        restricted_loads(pickle.dumps(payloads(marker)[payload], protocol=2))
    assert not marker.exists()


# -- security: metadata of a hostile checkpoint ---------------------------------------------------------------
def _with_metadata(path: Path, meta: object) -> Path:
    model = resnet.create_model("resnet8", num_classes=10)
    path.write_bytes(save({k: v.contiguous() for k, v in model.state_dict().items()}, metadata={"resnet": json.dumps(meta)}))
    return path


def _spec() -> dict[str, object]:
    spec = dataclasses.asdict(resnet.create_model("resnet8").spec)
    spec.pop("extra", None)
    return spec


HOSTILE_METADATA = {
    "not-an-object": (["x"], "not an object"),
    "classes-int": ({"format": "resnet", "spec": _spec(), "classes": 5}, "'classes' metadata"),
    "classes-short": ({"format": "resnet", "spec": _spec(), "classes": ["a", "b"]}, "names 2 classes"),
    "classes-nested": ({"format": "resnet", "spec": _spec(), "classes": [["a"]] * 10}, "list of names"),
    "dataset-list": ({"format": "resnet", "spec": _spec(), "dataset": ["x"]}, "'dataset' metadata"),
    "spec-string": ({"format": "resnet", "spec": "resnet8"}, "'spec' metadata"),
    "spec-10M-blocks": ({"format": "resnet", "spec": {**_spec(), "layers": [10_000_000, 1, 1]}}, "blocks claimed"),
    "spec-huge-widths": ({"format": "resnet", "spec": {**_spec(), "widths": [10**6, 10**6, 10**6]}}, "shape mismatch"),
    "spec-negative": ({"format": "resnet", "spec": {**_spec(), "widths": [-1, 32, 64]}}, "positive integers"),
    "preprocess-huge": ({"format": "resnet", "spec": _spec(), "preprocess": {"mean": [0.5] * 3, "std": [0.5] * 3,
                                                                          "input_size": 10**9}}, "preprocessing metadata"),
    "preprocess-text": ({"format": "resnet", "spec": _spec(), "preprocess": {"mean": "abc", "std": [1]}}, "preprocessing metadata"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_METADATA))
def test_hostile_metadata_is_a_one_line_error(case: str, tmp_path: Path, files: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    meta, needle = HOSTILE_METADATA[case]
    path = _with_metadata(tmp_path / f"{case}.safetensors", meta)
    rc, _, err = cli(capsys, "predict", path, files["image"])
    assert rc == 1
    one_line_error(err, "predict", needle, str(path))


def test_metadata_never_names_where_files_are_written(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Names inside a checkpoint ('model', 'classes') are shown, never used as paths."""
    work = tmp_path / "work"
    (work / "plots").mkdir(parents=True)
    monkeypatch.chdir(work)
    model = resnet.create_model("resnet8", num_classes=10, in_chans=1)
    path = work / "ckpt.safetensors"
    save_weights(model, path, {"model": "../../escape", "classes": [f"../../../escape{i}" for i in range(10)],
                               "dataset": "digits"})
    rc, out, err = cli(capsys, "eval", path, "--data", "digits", "--limit", "20", "--plots", "plots")
    assert rc == 1 and "other classes" in err  # the names are not digits' (issue 14): refused, nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and not list((work / "plots").iterdir())
    digits = work / "digits.safetensors"
    save_weights(model, digits, {"model": "../../escape", "classes": [str(i) for i in range(10)], "dataset": "digits"})
    rc, out, err = cli(capsys, "eval", digits, "--data", "digits", "--limit", "20", "--plots", "plots")
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert [p.name for p in (work / "plots").iterdir()] == ["confusion_digits.png"]
    digits.unlink()
    rc, out, err = cli(capsys, "export", path, "--format", "torchscript", "--out", "model.pt")
    assert rc == 0, err
    assert sorted(p.name for p in work.iterdir()) == ["ckpt.safetensors", "model.pt", "plots"]


def test_a_model_name_is_never_a_path(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The default run folder is runs/<model>-<data>: a name like ../../x must not create folders anywhere."""
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for name in ("../../escape", "/tmp/../escape", "resnet21"):
        rc, _, err = cli(capsys, "train", "--model", name, "--data", "digits", "--no-progress")
        assert rc == 2
        one_line_error(err, "train", "model" if name != "resnet21" else "6n+2")
    assert [p.name for p in tmp_path.rglob("*")] == ["a", "b"]


# -- broken checkpoints ------------------------------------------------------------------------------------
def test_zero_byte_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    for suffix in (".safetensors", ".pth", ".th", ".pt"):
        path = tmp_path / f"resnet20{suffix}"
        path.write_bytes(b"")
        with pytest.raises(CheckpointError, match="empty"):
            load_pretrained(resnet.create_model("resnet20"), path)
        for argv in (["eval", path, "--data", "digits"], ["predict", path, files["image"]], ["export", path, "--out", tmp_path / "x.onnx"]):
            rc, _, err = cli(capsys, *argv)
            assert rc == 1
            one_line_error(err, argv[0], "empty (0 bytes)", str(path), "use another copy")


@pytest.mark.parametrize("kind", ["ours", "tv", "aka"])
def test_truncated_checkpoints_at_every_fraction(kind: str, files: dict[str, Path], tmp_path: Path) -> None:
    data = files[kind].read_bytes()
    cuts = sorted({1, 7, 8, 9, 64, 100, *(int(len(data) * f) for f in np.linspace(0.01, 0.999, 25)), len(data) - 1})
    for cut in cuts:
        path = tmp_path / f"cut{files[kind].suffix}"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as err:
            read_state_dict(path)
        text = str(err.value)
        assert str(path) in text and "\n" not in text and ("truncated" in text or "corrupt" in text), (cut, text)


def test_truncated_checkpoint_through_the_commands(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for kind in ("ours", "tv"):
        data = files[kind].read_bytes()
        path = tmp_path / f"resnet20-cut{files[kind].suffix}"
        path.write_bytes(data[: len(data) // 2])
        for argv in (["eval", path, "--data", "digits"], ["predict", path, files["image"]], ["export", path, "--out", tmp_path / "x.onnx"]):
            rc, _, err = cli(capsys, *argv)
            assert rc == 1
            line = one_line_error(err, argv[0], str(path))
            assert "truncated" in line or "corrupt" in line
            assert len(line) < 400  # no paragraphs of PyTorch advice


@pytest.mark.parametrize("damage", ["zero", "truncated", "garbage"])
def test_damaged_training_state_on_resume(damage: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()  # a real state file's container, then cut or replaced
    torch.save({"format": "resnet-train-state", "version": 1, "step": 1, "model": {"w": torch.zeros(1000)}}, out / "last.state.pt")
    data = (out / "last.state.pt").read_bytes()
    (out / "last.state.pt").write_bytes({"zero": b"", "truncated": data[: len(data) // 2],
                                         "garbage": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))}[damage])
    with pytest.raises(CheckpointError) as err:
        train(TrainOptions(model="resnet8", data="digits", out=out, resume=True, progress=False, tensorboard=False))
    assert "last.state.pt" in str(err.value) and "delete it" in str(err.value) and "\n" not in str(err.value)


def test_checkpoint_of_another_architecture_lists_keys_and_shapes(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CheckpointError) as err:
        load_pretrained(resnet.create_model("resnet32"), files["tv"])
    assert "missing key(s): layer1.3.conv1.weight" in str(err.value) and "Pick the matching `model`" in str(err.value)
    with pytest.raises(CheckpointError, match=r"fc.weight: checkpoint \(10, 64\) vs model \(100, 64\)"):
        load_pretrained(resnet.create_model("resnet20", num_classes=100), files["tv"])
    with pytest.raises(CheckpointError, match="unexpected key"):
        load_pretrained(resnet.create_model("resnet14"), files["aka"], source="akamaster")
    rc, _, err = cli(capsys, "eval", files["ours"], "--model", "resnet20", "--data", "digits")
    assert rc == 1
    one_line_error(err, "eval", r"conv1.weight: checkpoint (16, 1, 3, 3) vs model (16, 3, 3, 3)", "missing key(s)", "--model")
    rc, _, err = cli(capsys, "predict", files["tv"], "--model", "resnet56", files["image"])
    assert rc == 1
    one_line_error(err, "predict", "does not fit resnet56", "missing key(s)")


# -- data sets and folders ---------------------------------------------------------------------------------
def test_wrong_checksum_cifar_archive_says_how_to_fetch_it_again(tmp_path: Path, capsys: pytest.CaptureFixture[str], r8: Path) -> None:
    folder = _cifar_folder(tmp_path / "src")
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    with pytest.raises(DataError, match=r"MD5 .* expected c58f30108f718f92721af3b95e74349a.*fetch https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz again"):
        load_arrays("cifar10", "test", archive.parent, cache_dir=tmp_path / "cache")
    rc, _, err = cli(capsys, "eval", r8, "--data", "cifar10", "--data-dir", archive.parent)
    assert rc == 1
    one_line_error(err, "eval", str(archive), "MD5", "fetch https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz again")
    rc, _, err = cli(capsys, "train", "--model", "resnet8", "--data", "cifar10", "--data-dir", archive.parent,
                     "--out", tmp_path / "run", "--no-progress")
    assert rc == 1
    one_line_error(err, "train", "MD5", "fetch")
    # an extracted folder with one altered file
    with pytest.raises(DataError, match="extract cifar-10-python.tar.gz again"):
        load_arrays("cifar10", "test", folder, cache_dir=tmp_path / "cache")


def test_missing_and_empty_data_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing, empty, no_classes, no_images = (tmp_path / n for n in ("missing", "empty", "noclasses", "noimages"))
    empty.mkdir()
    (no_classes / "train").mkdir(parents=True)
    (no_classes / "test").mkdir()
    for split in ("train", "test"):
        (no_images / split / "cat").mkdir(parents=True)
        (no_images / split / "cat" / "notes.txt").write_text("x")
    cases = {missing: "does not exist", empty: "train/ does not exist", no_classes: "no class folders",
             no_images: "holds no images"}
    for folder, needle in cases.items():
        with pytest.raises(DataError, match=needle) as err:
            load_arrays("folder", "train", folder, cache_dir=tmp_path / "cache")
        assert "\n" not in str(err.value)
        with pytest.raises(DataError):
            make_folder_loader(folder, "train", 4, train=True, workers=0)
        rc, _, err_text = cli(capsys, "train", "--model", "resnet8", "--data", "folder", "--data-dir", folder,
                              "--out", tmp_path / "run", "--no-progress")
        assert rc == 1
        one_line_error(err_text, "train", str(folder))
        rc, _, err_text = cli(capsys, "eval", untrained(tmp_path / "r8.safetensors"), "--data-dir", folder)
        assert rc == 1
        one_line_error(err_text, "eval", str(folder))
    with pytest.raises(UsageError, match="needs data_dir"):
        load_arrays("folder", "train", None)
    rc, _, err_text = cli(capsys, "predict", untrained(tmp_path / "r8.safetensors"), empty)
    assert rc == 1
    one_line_error(err_text, "predict", "no image files found", str(empty))
    rc, _, err_text = cli(capsys, "predict", untrained(tmp_path / "r8.safetensors"), missing / "x.png")
    assert rc == 1
    one_line_error(err_text, "predict", "does not exist", "x.png")


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("odd")
    kinds: dict[str, str] = {}
    for split in ("train", "test"):
        for cls in ("a", "b"):
            kinds = odd_images(root / split / cls)
    return root, kinds


def test_odd_images_in_array_data_sets_are_decoded_or_skipped(odd_folder: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, kinds = odd_folder
    ok = sorted(n for n, k in kinds.items() if k == "ok")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_arrays("folder", "train", root, cache_dir=tmp_path / "cache")
    assert len(ds) == 2 * len(ok) and ds.images.shape[1:] == (3, 16, 16)
    skipped = {Path(p).name: reason for p, reason in ds.extra["skipped"]}
    assert sorted(skipped) == sorted(n for n, k in kinds.items() if k != "ok")
    assert "exceeds limit" in skipped["huge.png"] and "truncated" in skipped["truncated.png"]
    assert skipped["zero.png"] == "empty file"
    assert sum("skipping" in str(w.message) for w in caught) == 2 * len(skipped)
    # 16-bit values are scaled to 8 bits, not clipped to white; grey becomes three equal channels
    deep = ds.images[ok.index("deep16.png")]
    grey = ds.images[ok.index("grey.png")]
    assert torch.equal(deep, grey) and 0 < float(deep.float().mean()) < 250
    with pytest.raises(DataError, match="cannot use image .*remove or replace the file"):
        load_arrays("folder", "train", root, cache_dir=tmp_path / "cache2", strict=True)


def test_odd_images_in_the_folder_loader_are_skipped(odd_folder: tuple[Path, dict[str, str]]) -> None:
    root, kinds = odd_folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each skipped file is warned about; the list is checked below
        loader = make_folder_loader(root, "train", 4, train=False, workers=0, image_size=16)
        seen = sum(len(y) for _, y in loader)
    assert seen == 2 * sum(k == "ok" for k in kinds.values())
    names = sorted(Path(p).name for p, _ in loader.dataset.skipped)
    assert names == sorted(2 * [n for n, k in kinds.items() if k != "ok"])


def test_odd_images_through_predict_and_eval(odd_folder: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    root, kinds = odd_folder
    two = untrained(tmp_path / "r8-2.safetensors", classes=2)  # the folder's classes: a, b
    rc, out, err = cli(capsys, "predict", two, root / "train" / "a", "--json")
    assert rc == 1  # some files failed
    report = json.loads(out)
    # a truncated PNG decodes padded: predicted, marked damaged, with a warning line naming it (--strict refuses it)
    damaged = sorted(Path(p["path"]).name for p in report["predictions"] if p.get("damaged"))
    assert damaged == ["truncated.png"]
    assert sorted(Path(p["path"]).name for p in report["predictions"]) == sorted(n for n, k in kinds.items() if k == "ok" or n in damaged)
    failed = sorted(Path(e["path"]).name for e in report["errors"])
    assert failed == sorted(n for n, k in kinds.items() if k == "bad" and n not in damaged)  # readme.txt is not an image by extension
    error_lines = [line for line in err.splitlines() if line.strip() and "damaged" not in line]
    assert len(error_lines) == len(failed) and all(line.startswith("resnet predict: error: cannot decode image") for line in error_lines)
    assert all("remove or replace the file" in line for line in error_lines)
    assert [line for line in err.splitlines() if "damaged" in line] == [
        line for line in err.splitlines() if line.startswith("resnet predict: warning: ") and "truncated.png is damaged" in line]
    # evaluation stops at the first undecodable image, naming it (skipping would change the error figures)
    rc, _, err = cli(capsys, "eval", two, "--data-dir", root)
    assert rc == 1
    one_line_error(err, "eval", "cannot decode image", str(root))


def test_class_count_differs_from_the_checkpoint(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    root = tmp_path / "three"
    for cls in ("x", "y", "z"):
        (root / "test" / cls).mkdir(parents=True)
        Image.new("RGB", (32, 32), 50).save(root / "test" / cls / "0.png")
    rc, _, err = cli(capsys, "eval", files["rgb"], "--data-dir", root)
    assert rc == 1
    one_line_error(err, "eval", "has 3 classes", "predicts 10")
    rc, _, err = cli(capsys, "eval", files["rgb"], "--data", "folder", "--data-dir", root, "--split", "test")
    assert rc == 1
    one_line_error(err, "eval", "3 classes", "10")
    rc, _, err = cli(capsys, "eval", files["ours"], "--data-dir", root)  # a 1-channel network: colour made grey
    assert rc == 1
    one_line_error(err, "eval", "has 3 classes", "predicts 10")


# -- nonsense option values ------------------------------------------------------------------------------
USAGE_ERRORS = [
    (["eval", "resnet8", "--data", "digits", "--batch-size", "-1"], "--batch-size"),
    (["eval", "resnet8", "--data", "digits", "--batch-size", "0"], "--batch-size"),
    (["eval", "resnet8", "--data", "digits", "--protocol", "nonsense"], "--protocol"),
    (["eval", "resnet8", "--data", "digits", "--limit", "-3"], "--limit"),
    (["eval", "resnet8", "--data", "digits", "--protocol", "multiscale", "--scales", "0"], "--scales"),
    (["eval", "resnet8", "--data", "digits", "--scales", "224"], "--scales"),
    (["eval", "resnet8", "--data", "digits", "--resize", "100000"], "--resize"),
    (["eval", "resnet8", "--data", "digits", "--crop", "-5"], "--crop"),
    (["eval", "resnet8", "--data", "digits", "--resize", "1"], "at least the crop"),  # found by the property test
    (["eval", "resnet8", "--data", "digits", "--resize", "16", "--crop", "24"], "at least the crop"),
    (["eval", "resnet8", "--data", "nonsense"], "nonsense"),
    (["eval", "resnet8"], "--data"),
    (["eval", "resnet21", "--data", "digits"], "6n+2"),
    (["eval", "resnet8", "--data", "digits", "--source", "nonsense"], "--source"),
    (["eval", "resnet8", "--data", "digits", "--batch-size", "many"], "--batch-size"),
    (["predict", "resnet8", "x.png", "--top", "0"], "--top"),
    (["predict", "resnet8", "x.png", "--batch-size", "-2"], "--batch-size"),
    (["predict", "resnet8", "x.png", "--protocol", "nonsense"], "--protocol"),
    (["predict", "no_such_model", "x.png"], "no_such_model"),
    (["summary", "resnet21"], "6n+2"),
    (["summary", "resnet8", "--input-size", "100000"], "--input-size"),
    (["summary", "resnet8", "--input-size", "4"], "--input-size"),
    (["summary", "resnet8", "--num-classes", "-1"], "num_classes"),
    (["summary", "resnet8", "--shortcut", "Z"], "--shortcut"),
    (["summary"], "model name"),
    (["export", "resnet8", "--out", "x.onnx", "--batch", "0"], "--batch"),
    (["export", "resnet8", "--out", "x.onnx", "--input-size", "100000"], "--input-size"),
    (["export", "resnet8", "--out", "x.onnx", "--atol", "-1"], "--atol"),
    (["export", "resnet8", "--out", "x.onnx", "--format", "nonsense"], "--format"),
    (["train", "--model", "resnet21", "--data", "digits"], "6n+2"),
    (["train", "--model", "resnet8", "--set", "batch_size=-5"], "batch_size"),
    (["train", "--model", "resnet8", "--set", "lr=fast"], "lr"),
    (["train", "--model", "resnet8", "--set", "no_such_field=1"], "no_such_field"),
    (["train", "--model", "resnet8", "--set", "novalue"], "KEY=VALUE"),
    (["train", "--model", "resnet8", "--recipe", "nonsense"], "nonsense"),
    (["train", "--model", "resnet8", "--data", "nonsense"], "nonsense"),
    (["train", "--model", "resnet8", "--seed", "-1"], "--seed"),
    (["train", "--model", "resnet8", "--device", "quantum"], "quantum"),
    (["train", "--model", "resnet8", "--stop-after", "0"], "--stop-after"),
    (["nonsense"], "nonsense"),
]


@pytest.mark.parametrize("argv,needle", USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_nonsense_option_values_are_usage_errors(argv: list[str], needle: str, tmp_path: Path, r8: Path,
                                                 capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if argv[0] in ("eval", "predict") and argv[1] == "resnet8":  # a model name alone is refused: use a weights file
        argv = [argv[0], str(r8), *argv[2:]]
    rc, _, err = cli(capsys, *argv)
    assert rc == 2, err
    one_line_error(err, argv[0], needle)
    assert list(tmp_path.iterdir()) == []  # nothing written on the way to a usage error


def test_out_of_memory_is_a_one_line_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import resnet.models.complexity as complexity

    def exhausted(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")

    monkeypatch.setattr(complexity, "count_macs", exhausted)
    rc, _, err = cli(capsys, "summary", "resnet8")
    assert rc == 1
    one_line_error(err, "summary", "out of memory", "smaller")


# -- the source itself -------------------------------------------------------------------------------------
def test_no_loader_in_the_package_can_unpickle_code() -> None:
    """Every torch.load passes weights_only=True; nothing calls pickle.load(s) / np.load with pickles,
    except the restricted CIFAR unpickler; torch.jit.load only reads back the file export just wrote."""
    import re

    src = Path(resnet.__file__).parent
    offenders = []
    for path in sorted(src.rglob("*.py")):
        code = "\n".join(line.split("#")[0] for line in path.read_text().splitlines() if not line.strip().startswith(("#", "``")))
        code = re.sub(r'"""[\s\S]*?"""', "", code)  # docstrings mention the unsafe calls they avoid
        for call in re.finditer(r"torch\.load\(([^)]*)\)", code):
            if "weights_only=True" not in call.group(1):
                offenders.append(f"{path.name}: {call.group(0)}")
        for bad in ("pickle.load(", "pickle.loads(", "allow_pickle=True", "dill.", "joblib.load", "weights_only=False"):
            if bad in code:
                offenders.append(f"{path.name}: {bad}")
        if "torch.jit.load(" in code and path.name != "export.py":
            offenders.append(f"{path.name}: torch.jit.load")
    assert not offenders, offenders
