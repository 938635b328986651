"""Export round trips: the file, loaded in its runtime, gives PyTorch's logits for batch sizes 1 and 3."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import resnet
from resnet.cli import main
from resnet.deploy import export_onnx, export_openvino, export_pt2, export_torchscript
from resnet.deploy.export import read_export_metadata
from resnet.inference.onnx_runtime import OrtModel
from resnet.errors import ResNetError

from deploy_helpers import randomise_bn


@pytest.mark.parametrize(("name", "size", "fold"), [("resnet20", 32, False), ("resnet18", 48, True)])
def test_onnx_round_trip_with_dynamic_batch(tmp_path: Path, name: str, size: int, fold: bool) -> None:
    model = randomise_bn(resnet.create_model(name, num_classes=10))
    out = tmp_path / f"{name}.onnx"
    report = export_onnx(model, out, example_input=torch.randn(1, 3, size, size), dynamic_batch=True, fold=fold)
    assert out.is_file() and report.batch_sizes == [1, 3] and report.max_abs_diff <= 1e-4
    runtime = OrtModel(out)
    for batch in (1, 3):
        x = torch.randn(batch, 3, size, size)
        with torch.no_grad():
            expected = model(x)
        assert (runtime(x) - expected).abs().max().item() <= 1e-4
    assert not list(tmp_path.glob(".*.tmp")), "temporary files must not be left behind"


def test_torchscript_round_trip_warns_that_it_is_deprecated(tmp_path: Path) -> None:
    model = randomise_bn(resnet.create_model("resnet20"))
    out = tmp_path / "resnet20.pt"
    with pytest.warns(FutureWarning, match=r"TorchScript export is deprecated .*torch\.jit\.trace.* removed in resnet 0\.3\.0.*'pt2'"):
        report = export_torchscript(model, out, example_input=torch.randn(1, 3, 32, 32), dynamic_batch=True, fold=True)
    assert report.batch_sizes == [1, 3] and report.max_abs_diff <= 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated; read back here to check the file
        loaded = torch.jit.load(str(out))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max().item() <= 1e-4


def test_a_mismatch_beyond_tolerance_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    model = randomise_bn(resnet.create_model("resnet8"))
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous content")
    with pytest.raises(ResNetError, match=r"differs from PyTorch by .* allowed 1e-30"):
        export_onnx(model, out, example_input=torch.randn(2, 3, 16, 16), atol=1e-30)
    assert out.read_bytes() == b"previous content"
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_export_reports_the_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r8.pt"
    rc = main(["export", "resnet8", "--random-weights", "--format", "torchscript", "--dynamic-batch", "--fold-bn", "--input-size", "16", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert report["format"] == "torchscript" and report["batch_sizes"] == [1, 3] and report["max_abs_diff"] <= 1e-4
    assert out.is_file()
    notes = [line for line in captured.err.splitlines() if line.startswith("note: TorchScript export is deprecated")]
    assert len(notes) == 1 and "removed in resnet 0.3.0" in notes[0] and "--format pt2" in notes[0], captured.err


def test_cli_export_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "resnet8", "--random-weights", "--out", str(tmp_path / "x.onnx"), "--batch", "0"]) == 2
    assert main(["export", "no_such_net", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "--batch-size must be at least 1" in err and "no_such_net" in err


def test_console_script_exports_a_run_folder(tmp_path: Path) -> None:
    """The installed ``resnet`` entry point, on a run folder as the trainer leaves it (best.safetensors + metadata)."""
    import subprocess
    import sys

    from resnet.models.interop import save_weights

    script = Path(sys.executable).parent / "resnet"
    if not script.is_file():
        pytest.skip("the resnet console script is not installed next to this Python")
    run = tmp_path / "runs" / "r8"
    run.mkdir(parents=True)
    pre = {"mean": [0.5], "std": [0.25], "input_size": 32}
    save_weights(randomise_bn(resnet.create_model("resnet8", in_chans=1)), run / "best.safetensors",
                 {"classes": [str(d) for d in range(10)], "dataset": "digits", "preprocess": pre, "step": 1})
    out = tmp_path / "r8.xml"  # OpenVINO IR: quick to write; ONNX and .pt2 are covered in-process
    proc = subprocess.run([str(script), "export", str(run), "--dynamic-batch", "--fold-bn", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "note:" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    assert report["format"] == "openvino" and report["batch_sizes"] == [1, 3] and report["max_abs_diff"] <= 1e-4
    assert json.loads(read_export_metadata(out)["classes"]) == [str(d) for d in range(10)]


# -- torch.export package (.pt2), dynamic image sizes, OpenVINO IR ---------------------------------------------------
META = {"classes": [f"c{i}" for i in range(10)], "preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "input_size": 32}}


def _close(run, model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    x = torch.randn(shape)
    with torch.no_grad():
        return float((run(x) - model(x)).abs().max())


def test_pt2_package_round_trips_with_metadata_any_batch_and_image_size(tmp_path: Path) -> None:
    from resnet.inference.pytorch import load_package

    model = randomise_bn(resnet.create_model("resnet20"))
    out = tmp_path / "r20.pt2"
    report = export_pt2(model, out, example_input=torch.randn(1, 3, 32, 32), dynamic_size=True, metadata=META)
    assert report.format == "pt2" and report.dynamic_batch and report.dynamic_size and report.max_abs_diff <= 1e-4
    assert report.checked_shapes == [[1, 3, 32, 32], [3, 3, 48, 40]]
    package = load_package(out)
    for shape in ((1, 3, 32, 32), (5, 3, 32, 32), (2, 3, 64, 48)):
        assert _close(package, model, shape) <= 1e-4, shape
    meta = read_export_metadata(out)
    assert meta["model"] == "resnet20" and meta["arithmetic"] == "fp32" and json.loads(meta["classes"]) == META["classes"]
    assert json.loads(meta["mean"]) == [0.5] * 3 and meta["input_size"] == "32" and meta["dynamic_size"] == "true"
    assert json.loads(meta["resnet"])["spec"]["stem"] == "cifar"
    assert not list(tmp_path.glob(".*.tmp"))


def test_pt2_package_without_dynamic_size_refuses_another_size_in_one_line(tmp_path: Path) -> None:
    from resnet.errors import UsageError
    from resnet.inference.pytorch import load_package

    model = randomise_bn(resnet.create_model("resnet8"))
    export_pt2(model, tmp_path / "r8.pt2", example_input=torch.randn(2, 3, 16, 16))
    package = load_package(tmp_path / "r8.pt2")
    assert _close(package, model, (4, 3, 16, 16)) <= 1e-4
    with pytest.raises(UsageError, match=r"takes float images \[N, 3x16x16\], got torch.float32 \(1, 3, 24, 24\)"):
        package(torch.randn(1, 3, 24, 24))
    assert read_export_metadata(tmp_path / "r8.pt2")["dynamic_size"] == "false"


def test_onnx_dynamic_size_runs_at_two_sizes_and_says_its_exported_size(tmp_path: Path) -> None:
    """Issue 34 item 10: a static graph says the size it was exported at (48, not the network's 32); a dynamic one
    runs at any size in ONNX Runtime and says so."""
    model = randomise_bn(resnet.create_model("resnet20"))
    static = tmp_path / "static.onnx"
    export_onnx(model, static, example_input=torch.randn(1, 3, 48, 48), metadata=META)
    meta = read_export_metadata(static)
    assert meta["input_size"] == "48" and meta["dynamic_size"] == "false" and meta["dynamic_batch"] == "false"
    assert json.loads(meta["resnet"])["export"]["input_shape"] == [3, 48, 48]
    with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime's own error type: a static graph refuses 32x32
        OrtModel(static)(torch.randn(1, 3, 32, 32))

    dynamic = tmp_path / "dynamic.onnx"
    report = export_onnx(model, dynamic, example_input=torch.randn(1, 3, 48, 48), dynamic_batch=True, dynamic_size=True, metadata=META)
    assert report.checked_shapes == [[1, 3, 48, 48], [3, 3, 72, 60]]
    runtime = OrtModel(dynamic)
    for shape in ((2, 3, 32, 32), (1, 3, 48, 48)):
        assert _close(runtime, model, shape) <= 1e-4, shape
    meta = read_export_metadata(dynamic)
    assert meta["input_size"] == "48" and meta["dynamic_size"] == "true" and meta["dynamic_batch"] == "true"


def test_cli_input_size_and_dynamic_size_reach_the_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r8.onnx"
    rc = main(["export", "resnet8", "--random-weights", "--input-size", "48", "--dynamic-size", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Nx3x" not in captured.out and "1x3xHxW" in captured.out and "1x3x48x48, 1x3x72x60" in captured.out
    meta = read_export_metadata(out)
    assert meta["input_size"] == "48" and meta["dynamic_size"] == "true"


def test_openvino_ir_round_trip_with_metadata(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from resnet.inference.openvino import core

    model = randomise_bn(resnet.create_model("resnet20"))
    out = tmp_path / "ir" / "r20.xml"
    report = export_openvino(model, out, example_input=torch.randn(1, 3, 32, 32), dynamic_batch=True, dynamic_size=True,
                             fold=True, metadata=META)
    assert report.max_abs_diff <= 1e-4 and out.is_file() and out.with_suffix(".bin").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["r20.bin", "r20.xml"], "no staging folder left behind"
    compiled = core().compile_model(str(out), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert _close(lambda x: torch.from_numpy(compiled(x.numpy())[0].copy()), model, (2, 3, 40, 56)) <= 1e-4
    meta = read_export_metadata(out)
    assert json.loads(meta["classes"]) == META["classes"] and meta["dynamic_size"] == "true" and meta["model"] == "resnet20"


def test_formats_follow_their_file_endings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from resnet.deploy.export import format_for_path

    assert [format_for_path(n) for n in ("a.pt2", "a.onnx", "a.xml", "a.pt")] == ["pt2", "onnx", "openvino", "torchscript"]
    rc = main(["export", "resnet8", "--random-weights", "--format", "pt2", "--out", str(tmp_path / "a.onnx")])
    assert rc == 2 and "name the file *.pt2" in capsys.readouterr().err
    rc = main(["export", "resnet8", "--random-weights", "--opset", "17", "--out", str(tmp_path / "a.pt2")])
    assert rc == 2 and "--opset applies to --format onnx only" in capsys.readouterr().err


def test_deprecations_raised_inside_resnet_are_errors_in_this_suite() -> None:
    """pyproject's filterwarnings: a DeprecationWarning / FutureWarning that our code triggers fails the test."""
    import sys

    path = sys.modules["resnet.deploy.export"].__file__  # the attribute `export` is the function, not the module
    for category in (DeprecationWarning, FutureWarning):
        with pytest.raises(category):
            warnings.warn_explicit("old API", category, path, 1, module="resnet.deploy.export")
