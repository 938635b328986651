"""Export round trips: the file, loaded in its runtime, gives PyTorch's logits for batch sizes 1 and 3."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import resnet
from resnet.cli import main
from resnet.deploy import export_onnx, export_torchscript
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


def test_torchscript_round_trip(tmp_path: Path) -> None:
    model = randomise_bn(resnet.create_model("resnet20"))
    out = tmp_path / "resnet20.pt"
    report = export_torchscript(model, out, example_input=torch.randn(1, 3, 32, 32), dynamic_batch=True, fold=True)
    assert report.batch_sizes == [1, 3] and report.max_abs_diff <= 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still the portable format
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
    out = tmp_path / "r8.pt"  # TorchScript: ONNX export is covered in-process above and takes much longer
    proc = subprocess.run([str(script), "export", str(run), "--format", "torchscript", "--dynamic-batch", "--fold-bn", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["batch_sizes"] == [1, 3] and report["max_abs_diff"] <= 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still the portable format
        loaded = torch.jit.load(str(out))
    with torch.no_grad():
        assert loaded(torch.randn(2, 1, 32, 32)).shape == (2, 10)
