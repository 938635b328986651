"""Issue 34: what a newcomer met in the first hour with the README — one spelling per idea, eval of any run
with no flags, experiments that judge their evidence, untrained weights refused, one answer per photo,
inputs recognised by their content, offline detected at once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.cli import build_parser, main
from test_cli_consistency import subparsers
from test_no_silent_wrong_answers import CLASSES, one_line, run_cli, upright, write_ckpt, write_tree


# -- 7: one spelling per idea ---------------------------------------------------------------------------
@pytest.mark.parametrize("path,parser", subparsers(build_parser()), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_no_parser_completes_abbreviated_flags(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    assert parser.allow_abbrev is False, path


def test_eval_mode_is_not_taken_for_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval", str(tmp_path / "x"), "--mode", "fp32"])
    assert info.value.code == 2 and "unrecognized arguments: --mode fp32" in capsys.readouterr().err


def shown_flags(command: str) -> set[str]:
    (sub,) = [p for path, p in subparsers(build_parser()) if path == (command,)]
    return {s for a in sub._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


def test_every_command_spells_the_optimised_mode_optimize_and_serve_takes_a_device(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for command in ("eval", "predict", "serve"):
        assert "--optimize" in shown_flags(command) and "--mode" not in shown_flags(command), command
    assert "--device" in shown_flags("serve") and "--batch-size" in shown_flags("train")
    parser = build_parser()
    assert parser.parse_args(["serve", "x", "--optimize", "int8"]).optimize == "int8"
    assert parser.parse_args(["serve", "x"]).optimize == "fp32"
    args = parser.parse_args(["serve", "x", "--mode", "bf16"])  # the old spelling still works, quietly in scripts
    assert args.optimize == "bf16" and capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # on a terminal it says the new name
    parser.parse_args(["serve", "x", "--mode", "bf16"])
    assert "--mode is now spelled --optimize" in capsys.readouterr().err
    assert parser.parse_args(["serve", "x", "--device", "cpu"]).device == "cpu"


def test_train_batch_size_is_the_recipe_batch_size() -> None:
    from resnet.cli.cmd_train import _batch_size_as_override
    from resnet.errors import UsageError

    args = build_parser().parse_args(["train", "resnet8", "--batch-size", "32"])
    _batch_size_as_override(args)
    assert args.overrides == ["batch_size=32"]
    args = build_parser().parse_args(["train", "resnet8", "--batch-size", "32", "--set", "batch_size=64"])
    with pytest.raises(UsageError, match="both given"):
        _batch_size_as_override(args)


def test_the_10crop_hint_names_flags_with_sizes_that_help(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_ckpt(tmp_path / "net.safetensors")
    Image.fromarray(upright()).save(tmp_path / "a.png")
    rc, _, err = run_cli(["predict", str(ckpt), str(tmp_path / "a.png"), "--protocol", "10crop", "--resize", "32"], capsys)
    assert rc == 2 and "--resize 32 --crop 28" in one_line(err)


@pytest.mark.shared
def test_the_10crop_hint_lowers_the_akamaster_error(akamaster_dir: Path, cifar10_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ckpt,) = akamaster_dir.glob("resnet20-*.th")
    common = [str(ckpt), "--data-dir", str(cifar10_dir), "--limit", "1000", "--batch-size", "500", "--json"]
    rc, out, err = run_cli(["eval", *common, "--protocol", "10crop"], capsys)
    assert rc == 2 and "--resize 32 --crop 28" in one_line(err)
    errors = {}
    for name, extra in (("center", []), ("10crop", ["--protocol", "10crop", "--resize", "32", "--crop", "28"])):
        rc, out, err = run_cli(["eval", *common, *extra], capsys)
        assert rc == 0, err
        errors[name] = json.loads(out)["members"][0]["top1_err"]
    assert errors["10crop"] < errors["center"]


def test_the_int8_error_names_the_calibration_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_ckpt(tmp_path / "net.safetensors")  # records no training data
    Image.fromarray(upright()).save(tmp_path / "a.png")
    rc, _, err = run_cli(["predict", str(ckpt), str(tmp_path / "a.png"), "--optimize", "int8"], capsys)
    assert rc == 1 and "--calibration" in one_line(err)


# -- 6: inputs recognised by their content --------------------------------------------------------------
def tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, producer_name="pytorch"), str(path))
    return path


def torchscript(net: torch.nn.Module, path: Path) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices: the files still exist in the wild
        torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 32, 32)), path)
    return path


def test_file_kinds_are_read_off_the_first_bytes(tmp_path: Path) -> None:
    from test_no_silent_wrong_answers import tiny_net

    from resnet.models.interop import save_weights
    from resnet.utils.filekind import file_kind

    Image.fromarray(upright()).save(tmp_path / "a.png")
    Image.fromarray(upright()).save(tmp_path / "a.jpg")
    Image.fromarray(upright()).save(tmp_path / "a.webp")
    Image.fromarray(upright()).save(tmp_path / "renamed.pth", format="JPEG")  # the name says nothing
    net = tiny_net()
    torch.save(net.state_dict(), tmp_path / "w.pth")
    torch.save(net.state_dict(), tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    torchscript(net, tmp_path / "ts.pt")
    save_weights(net, tmp_path / "w.safetensors", {"classes": CLASSES})
    kinds = {name: file_kind(tmp_path / name) for name in ("a.png", "a.jpg", "a.webp", "renamed.pth", "w.pth", "legacy.pth",
                                                            "ts.pt", "w.safetensors")}
    kinds["net.onnx"] = file_kind(tiny_onnx(tmp_path / "net.onnx"))
    assert kinds == {"a.png": "image", "a.jpg": "image", "a.webp": "image", "renamed.pth": "image", "w.pth": "pytorch-zip",
                     "legacy.pth": "pickle", "ts.pt": "torchscript", "w.safetensors": "safetensors", "net.onnx": "onnx"}


def test_swapped_arguments_and_exports_are_named_not_called_corrupt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_no_silent_wrong_answers import tiny_net

    ckpt = write_ckpt(tmp_path / "run" / "best.safetensors")
    photo = tmp_path / "photo.jpg"
    Image.fromarray(upright()).save(photo)
    rc, _, err = run_cli(["predict", str(photo), str(tmp_path / "run")], capsys)
    line = one_line(err)
    assert rc == 1 and "is an image" in line and "did you swap the arguments? `resnet predict RUN PHOTO...`" in line
    assert "corrupt" not in line
    (tmp_path / "photos").mkdir()
    Image.fromarray(upright()).save(tmp_path / "photos" / "b.png")
    rc, _, err = run_cli(["predict", str(tmp_path / "photos"), str(ckpt)], capsys)
    assert rc == 1 and "folder of images" in one_line(err) and "did you swap" in one_line(err)
    rc, _, err = run_cli(["predict", str(tiny_onnx(tmp_path / "net.onnx")), str(photo)], capsys)
    line = one_line(err)
    assert rc == 1 and "is an ONNX model" in line and "reads checkpoints, run folders and weight names" in line
    assert "ONNX Runtime" in line and "corrupt" not in line
    torchscript(tiny_net(), tmp_path / "net.pt")
    rc, _, err = run_cli(["eval", str(tmp_path / "net.pt"), "--data-dir", str(tmp_path / "photos")], capsys)
    assert rc == 1 and "is a TorchScript export" in one_line(err) and "torch.jit.load (they carry code" in one_line(err)


def test_the_library_names_the_kind_and_leaves_the_advice_to_the_command_line(tmp_path: Path) -> None:
    from resnet.errors import WrongFileKind
    from resnet.inference.load import load_network

    Image.fromarray(upright()).save(tmp_path / "photo.png")
    with pytest.raises(WrongFileKind) as info:
        load_network(str(tmp_path / "photo.png"))
    assert info.value.kind == "image" and "photo.png is an image" in str(info.value) and "swap" not in str(info.value)


# -- 4: untrained weights are refused everywhere -------------------------------------------------------
@pytest.fixture()
def refusing(monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet.inference.load import ALLOW_UNTRAINED_ENV

    monkeypatch.delenv(ALLOW_UNTRAINED_ENV, raising=False)


def trained_looking(net: torch.nn.Module) -> torch.nn.Module:
    """Batch-norm statistics and scales moved as training moves them (the answers stay meaningless, but nothing
    in the file says so)."""
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    return net


@pytest.mark.usefixtures("refusing")
def test_a_saved_untrained_torchvision_network_is_refused_naming_the_file_and_the_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18-untrained.pth")
    photo = tmp_path / "a.png"
    Image.fromarray(upright()).save(photo)
    rc, out, err = run_cli(["predict", str(tmp_path / "resnet18-untrained.pth"), str(photo)], capsys)
    line = one_line(err)
    assert rc == 1 and out == "" and "resnet18-untrained.pth holds untrained weights" in line
    assert "initial running statistics (mean 0, variance 1)" in line and "--allow-untrained" in line
    rc, out, err = run_cli(["predict", str(tmp_path / "resnet18-untrained.pth"), str(photo), "--allow-untrained"], capsys)
    assert rc == 0 and out.startswith(str(photo)), err


@pytest.mark.usefixtures("refusing")
def test_weights_equal_to_a_fresh_initialisation_are_refused_in_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_no_silent_wrong_answers import PRE, tiny_net

    from resnet.errors import CheckpointError
    from resnet.models.interop import save_weights
    from resnet.serve import load_member

    fresh = write_ckpt(tmp_path / "fresh" / "best.safetensors")
    net = tiny_net().train()
    with torch.no_grad():  # statistics moved by forward passes, but no optimiser step: scales 1, shifts 0
        net(torch.randn(4, 3, 32, 32))
    save_weights(net.eval(), tmp_path / "stats-only.safetensors", {"classes": CLASSES, "preprocess": PRE})
    data = write_tree(tmp_path / "data", CLASSES)
    for ckpt, check in ((tmp_path / "fresh", "initial running statistics"), (tmp_path / "stats-only.safetensors", "scale and shift")):
        rc, _, err = run_cli(["eval", str(ckpt), "--data-dir", str(data)], capsys)
        assert rc == 1 and "holds untrained weights" in one_line(err) and check in one_line(err), err
        with pytest.raises(CheckpointError, match="`allow_untrained`"):
            load_member(str(ckpt), "none")
        rc, _, err = run_cli(["export", str(ckpt), "--out", str(tmp_path / "x.pt")], capsys)
        assert rc == 1 and "holds untrained weights" in one_line(err)
    assert load_member(str(fresh), "none", allow_untrained=True).num_classes == 3
    save_weights(trained_looking(tiny_net()), tmp_path / "trained.safetensors", {"classes": CLASSES, "preprocess": PRE})
    rc, _, err = run_cli(["eval", str(tmp_path / "trained.safetensors"), "--data-dir", str(data), "--json"], capsys)
    assert rc == 0, err


# -- 9: offline is detected once, at once ----------------------------------------------------------------
PUBLISHERS = ("resnet18:tv_in1k_v1", "resnet18:timm:a1_in1k", "resnet20:akamaster_cifar10")


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, int]]:
    """Empty caches, every publisher pointed at an address nothing answers, sleeping (retry back-off) an error."""
    import time

    from resnet.utils import download

    monkeypatch.setenv("RESNET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(download, "_reachable", {})

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s: a retry back-off while offline")

    monkeypatch.setattr(time, "sleep", no_sleep)
    probes: list[tuple[str, int]] = []
    return probes


def test_an_unreachable_network_is_probed_once_and_every_publisher_says_so_in_one_line(
        no_network: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from resnet.utils import download

    def probe(host: str, port: int, timeout: float) -> bool:  # no real network: the answer of a black hole
        assert timeout <= 2.0
        no_network.append((host, port))
        return False

    monkeypatch.setattr(download, "_probe", probe)
    monkeypatch.setenv("RESNET_WEIGHTS_MIRROR", "http://192.0.2.1:9/weights")
    monkeypatch.setenv("HF_ENDPOINT", "http://192.0.2.1:9")
    for name in PUBLISHERS:
        rc, out, err = run_cli(["weights", "download", name], capsys)
        line = one_line(err)
        assert rc == 1 and "no network (192.0.2.1 did not answer within 2 s)" in line and "resnet weights import" in line, name
        assert "Retrying" not in err
    assert no_network == [("192.0.2.1", 9)]  # one probe for the whole process


def test_a_closed_loopback_port_fails_each_publisher_in_one_line_without_retries(
        no_network: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RESNET_WEIGHTS_MIRROR", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    for name in PUBLISHERS:
        rc, out, err = run_cli(["weights", "download", name], capsys)
        line = one_line(err)
        assert rc == 1 and "no network (127.0.0.1 did not answer" in line and name in line, name


def test_offline_publisher_weights_are_refused_before_pytorch_or_timm_is_imported(tmp_path: Path) -> None:
    """A fresh process asking for timm / torchvision / akamaster weights, or a network's recommended weights, with no
    network and nothing cached: one line naming the download command, the import command and the cache folder; one
    probe per host, no retry, and neither PyTorch nor timm nor torchvision imported on the way (their metadata cost seconds before the line)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a port that was just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = (
        "import json, sys\n"
        "from resnet.utils import download\n"
        "probes = []\n"
        "real = download._probe\n"
        "download._probe = lambda host, port, timeout: probes.append([host, port]) or real(host, port, timeout)\n"
        "from resnet.cli import main\n"
        "rcs = [main(['weights', 'download', name]) for name in sys.argv[1:]]\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules)\n"
        "print(json.dumps({'rcs': rcs, 'probes': probes, 'heavy': heavy}))\n"
    )
    home = tmp_path / "home"
    env = {**os.environ, "RESNET_HOME": str(home), "TORCH_HOME": str(tmp_path / "torch"), "HF_ENDPOINT": f"http://127.0.0.1:{port}",
           "RESNET_WEIGHTS_MIRROR": f"http://127.0.0.1:{port}/weights", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    env.pop("HF_HUB_OFFLINE", None)
    names = (*PUBLISHERS, "resnet18", "resnet20:default")  # and the recommended weights, whoever publishes them
    done = subprocess.run([sys.executable, "-c", script, *names], env=env, capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rcs"] == [1] * len(names) and result["heavy"] == [], done.stderr
    assert result["probes"] == [["127.0.0.1", port]] * len(names)  # one attempt each (a loopback answer is not kept)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == len(names) and "Retrying" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    for name, line in zip(names, lines):
        spec = name if ":" in name else f"{name}:default"
        assert "no network (127.0.0.1 did not answer" in line and f"`resnet weights download {spec}`" in line, line
        assert f"import it: `resnet weights import FILE --as {spec}`" in line and str(home / "weights") in line, line


def test_a_cached_file_or_a_tag_without_publisher_is_left_to_the_full_lookup(
        no_network: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from resnet.utils import download
    from resnet.weights.home import check_fetchable, torch_hub_dir

    monkeypatch.setattr(download, "_probe", lambda host, port, timeout: no_network.append((host, port)) or False)
    monkeypatch.setenv("HF_ENDPOINT", "http://192.0.2.1:9")
    with pytest.raises(download.OfflineError, match="cannot fetch resnet18:timm:a1_in1k"):
        check_fetchable("resnet18", "timm:a1_in1k")
    copy = torch_hub_dir() / "checkpoints" / "resnet18-f37072fd.pth"  # torchvision's copy: loads offline
    copy.parent.mkdir(parents=True)
    copy.write_bytes(b"weights")
    for tag in ("tv_in1k_v1", "timm:a1_in1k", None, "default"):
        check_fetchable("resnet18", tag)  # nothing raised: the full lookup decides
    check_fetchable("resnet999", "timm:a1_in1k")  # an unknown network gets its own error there
    assert no_network == [("192.0.2.1", 9)]


def test_the_torch_free_facts_agree_with_torch_and_torchvision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from resnet.weights import home
    from resnet.weights.registry import torchvision_entries

    for env in ({"TORCH_HOME": str(tmp_path / "t")}, {"XDG_CACHE_HOME": str(tmp_path / "x")}, {}):
        monkeypatch.delenv("TORCH_HOME", raising=False)
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        with monkeypatch.context() as m:
            m.delitem(sys.modules, "torch")  # the rule used before PyTorch is imported
            without = home.torch_hub_dir()
        assert without == Path(torch.hub.get_dir()) == home.torch_hub_dir()
    urls = [e.url for model in ("resnet18", "resnet50", "wide_resnet50_2") for e in torchvision_entries(model)]
    assert urls and all(url.startswith(home.TORCHVISION_URL) for url in urls)


# -- 5: one answer per photo, whatever else is passed -----------------------------------------------------
@pytest.fixture(scope="module")
def photos_and_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    from test_no_silent_wrong_answers import PRE, tiny_net

    from resnet.models.interop import save_weights

    root = tmp_path_factory.mktemp("one-answer")
    train = write_tree(root / "data", CLASSES, splits=("train",), per_class=4)
    ckpt = root / "run" / "best.safetensors"
    ckpt.parent.mkdir()
    save_weights(trained_looking(tiny_net(3)), ckpt, {"classes": CLASSES, "dataset": "imagenet", "data_dir": str(train),
                                                       "preprocess": PRE})
    rng = np.random.default_rng(5)
    photos = []
    for i in range(32):
        path = root / "photos" / f"p{i:02d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(40 + i, 48, 3), dtype=np.uint8)).save(path)
        photos.append(path)
    return ckpt, photos


def test_auto_chooses_at_the_command_batch_size_not_at_the_number_of_files(
        photos_and_run: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    prepare_module = importlib.import_module("resnet.inference.prepare")  # the package exports a function of that name
    ckpt, photos = photos_and_run
    batches: list[int | None] = []
    real = prepare_module.prepare

    def spy(network, mode, **kwargs):  # noqa: ANN001, ANN202
        batches.append(kwargs.get("batch"))
        return real(network, mode, **{**kwargs, "engine": "ours"})  # ours: nothing measured, the test stays short

    monkeypatch.setattr(prepare_module, "prepare", spy)
    for files in (photos[:1], photos):
        rc, _, err = run_cli(["predict", str(ckpt), *map(str, files), "--optimize", "fp32"], capsys)
        assert rc == 0, err
    assert batches == [64, 64]  # --batch-size's default, both times (it was 1, then 32: two engines, two answers)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["auto", "ours", "onnxruntime", "openvino"])
@pytest.mark.parametrize("mode", ["int8", "fp32"])
def test_a_photo_gets_the_same_printed_answer_alone_and_among_32_files(
        photos_and_run: tuple[Path, list[Path]], engine: str, mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, photos = photos_and_run

    def printed(files: list[Path]) -> tuple[str, str]:
        rc, out, err = run_cli(["predict", str(ckpt), *map(str, files), "--optimize", mode, "--engine", engine, "--top", "3"], capsys)
        assert rc == 0, err
        engine_line = next(line for line in err.splitlines() if "runs on" in line)
        return next(line for line in out.splitlines() if line.startswith(str(files[0]))), engine_line

    alone, alone_engine = printed(photos[:1])
    among, among_engine = printed(photos)
    assert alone_engine == among_engine  # one engine per invocation, whatever the number of files
    assert alone == among


# -- 2: eval of any run folder with no flags; per-class accuracy in training and eval --------------------
def photo_folder(root: Path, classes: list[str] = CLASSES) -> Path:
    """Photos of many sizes (as a phone folder has), train/ and val/."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        for ci, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 60, size=(int(rng.integers(40, 90)), int(rng.integers(40, 90)), 3), dtype=np.uint8)
                a[..., ci % 3] += 150
                Image.fromarray(a).save(folder / f"{i}.jpg")
    return root


def test_eval_of_a_photo_fine_tune_needs_no_flags_and_both_report_per_class_accuracy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = photo_folder(tmp_path / "photos")
    run = tmp_path / "run"
    rc, out, err = run_cli(["train", "resnet8", "--data", "folder", "--data-dir", str(photos), "--recipe", "finetune",
                            "--set", "iterations=4", "--set", "image_size=32", "--batch-size", "6", "--out", str(run),
                            "--no-tensorboard"], capsys)
    assert rc == 0, err
    assert "per-class accuracy" in out and all(c in out for c in CLASSES)
    summary = json.loads((run / "summary.json").read_text())
    assert list(summary["per_class_accuracy"]) == CLASSES and summary["per_class_split"] == "val"
    rc, out, err = run_cli(["eval", str(run)], capsys)  # no flags: the photos the run recorded, its preprocessing
    assert rc == 0, err
    assert "per-class accuracy" in out and "image folder" in out and str(photos / "val") in out
    rc, out, err = run_cli(["eval", str(run), "--json"], capsys)
    report = json.loads(out)
    assert report["images"] == 9 and list(report["members"][0]["per_class_acc"]) == CLASSES


def test_a_mixed_size_small_image_folder_names_flags_not_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = photo_folder(tmp_path / "photos")
    rc, _, err = run_cli(["train", "resnet8", "--data", "folder", "--data-dir", str(photos), "--set", "iterations=2",
                          "--out", str(tmp_path / "run"), "--no-tensorboard"], capsys)
    line = one_line(err)
    assert rc == 1 and "--recipe finetune" in line and "ImageFolderDataset" not in line


def test_eval_prints_per_class_accuracy_up_to_100_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classes = [f"c{i:02d}" for i in range(60)]
    ckpt = write_ckpt(tmp_path / "net.safetensors", classes=classes)
    data = write_tree(tmp_path / "data", classes, per_class=1)
    rc, out, err = run_cli(["eval", str(ckpt), "--data-dir", str(data)], capsys)
    assert rc == 0, err
    assert "hardest" not in out and all(c in out for c in classes)


# -- 3: experiments judge their own evidence ----------------------------------------------------------------
def curve(depth: int, residual: bool, train: float, *, tail: tuple[float, ...] = (), classes: int = 10, seed: int = 0) -> dict:
    points = [[10 * (i + 1), e] for i, e in enumerate((*tail, train))]
    return {"name": f"{'resnet' if residual else 'plain'}{depth}", "depth": depth, "residual": residual, "seed": seed,
            "status": "done", "iterations": 100, "steps": 100, "train": points, "test": [[100, train + 2]],
            "final_train_error": train, "final_test_error": train + 2, "classes": classes}


def test_plain_nets_at_chance_are_inconclusive_not_reproduced() -> None:
    from resnet.analysis.experiments import claim_checks, degradation_verdict

    at_chance = [curve(8, False, 89.6), curve(14, False, 90.4), curve(8, True, 80.0), curve(14, True, 78.0)]
    verdict = degradation_verdict(at_chance)
    assert verdict.startswith("degradation: inconclusive (plain-8 sits at 89.60 % training error, near chance (90.0 % for 10 classes)")
    assert "reproduced" not in claim_checks(at_chance)[0].replace("not reproduced", "")


def test_a_gap_within_the_noise_is_inconclusive_and_one_beyond_it_is_reproduced() -> None:
    from resnet.analysis.experiments import degradation_verdict

    noisy = (30.0, 36.0, 29.0, 35.0)  # ±3 points from one log to the next
    assert "within the noise" in degradation_verdict([curve(8, False, 30.0, tail=noisy), curve(14, False, 32.0, tail=noisy)])
    assert degradation_verdict([curve(8, False, 30.0, tail=noisy), curve(14, False, 45.0, tail=noisy)]).startswith(
        "degradation: reproduced (the deeper plain net trains worse (+15.00 points")
    seeds = [curve(8, False, e, seed=s) for s, e in enumerate((20.0, 28.0))] + [curve(14, False, 27.0)]
    assert "within the noise" in degradation_verdict(seeds)  # the seeds' spread (5.7 points) is the noise


def test_paper_figures_appear_only_beside_results_on_the_paper_data_set() -> None:
    from resnet.analysis.experiments import degradation_markdown, depth_table_markdown, depth_table_rows

    curves = [curve(20, False, 10.0), curve(56, False, 14.0), curve(20, True, 9.0), curve(56, True, 8.0)]
    assert "8.75" in degradation_markdown(curves, "setup", "cifar10") and "paper ResNet test" in degradation_markdown(curves, "setup", "cifar10")
    digits = degradation_markdown(curves, "setup", "digits")
    assert "paper ResNet test" not in digits and "8.75" not in digits and "trained on digits" in digits
    assert all(r["paper"] is None for r in depth_table_rows(curves, data="digits"))
    assert "6.97" not in depth_table_markdown(depth_table_rows(curves, data="digits"), "setup")
    assert [r["paper"] for r in depth_table_rows(curves, data="cifar10") if r["residual"]] == [8.75, 6.97]


def test_messages_name_the_current_spelling_not_a_hidden_alias() -> None:
    from resnet.cli.options import flag_names

    parser = build_parser()
    names = flag_names(parser, parser.parse_args(["serve", "x"]))
    assert names["optimize"] == "--optimize" and names["checkpoint_source"] == "--origin"


@pytest.mark.usefixtures("refusing")
def test_fine_tuning_from_untrained_weights_is_refused_with_the_train_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh = write_ckpt(tmp_path / "fresh.safetensors")
    photos = photo_folder(tmp_path / "photos")
    rc, _, err = run_cli(["train", "--init", str(fresh), "--data", "folder", "--data-dir", str(photos), "--recipe", "finetune",
                          "--set", "iterations=1", "--out", str(tmp_path / "run"), "--no-tensorboard"], capsys)
    line = one_line(err)
    assert rc == 1 and "fresh.safetensors holds untrained weights" in line and "--allow-untrained" in line


def test_eval_of_a_fine_tune_without_val_scores_the_photos_its_training_held_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    photos = photo_folder(tmp_path / "photos")
    shutil.rmtree(photos / "val")  # train/ only: training validates on a stratified fifth of it
    run = tmp_path / "run"
    rc, out, err = run_cli(["train", "resnet8", "--data", "folder", "--data-dir", str(photos), "--recipe", "finetune",
                            "--set", "iterations=2", "--set", "image_size=32", "--batch-size", "6", "--out", str(run),
                            "--no-tensorboard", "--no-progress"], capsys)
    assert rc == 0, err
    summary = json.loads((run / "summary.json").read_text())
    rc, out, err = run_cli(["eval", str(run), "--json"], capsys)
    assert rc == 0, err
    report = json.loads(out)
    assert report["images"] == 4 and "held out in training" in report["data"]  # 20 % of 18 photos
    assert report["members"][0]["per_class_acc"] == summary["per_class_accuracy"]
