"""``resnet experiment ...`` end to end in tiny configurations on the embedded digits data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet.cli import main

pytest.importorskip("resnet.data", reason="needs resnet.data")
pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: see conftest


def _run(*argv: str) -> int:
    return main(["experiment", *argv])


def test_gradients_on_digits_writes_figures_table_and_json(tmp_path: Path) -> None:
    out = tmp_path / "grad"
    assert _run("gradients", "--data", "digits", "--depths", "8", "14", "--no-bn", "--steps", "2", "--batch-size", "16", "--out", str(out)) == 0
    for name in ("gradients.png", "gradients_backprop.png", "gradients.md", "gradients.json"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "gradients.json").read_text())
    runs = data["runs"]
    assert [(r["model"], r["batchnorm"]) for r in runs] == [
        ("plain8", True), ("resnet8", True), ("plain8", False), ("resnet8", False),
        ("plain14", True), ("resnet14", True), ("plain14", False), ("resnet14", False),
    ]
    first = runs[0]
    assert [s["step"] for s in first["snapshots"]] == [0, 2]
    assert first["layers"] == ["conv1"] + [f"layer{i}.0.conv{j}" for i in (1, 2, 3) for j in (1, 2)] + ["fc"]
    assert all(len(s["weight"]) == len(s["backprop"]) == 8 for s in first["snapshots"])
    assert all(v > 0 for s in first["snapshots"] for v in s["weight"] + s["backprop"])
    assert [r["lr"] for r in runs[:4]] == [0.1, 0.1, 0.01, 0.01]
    table = (out / "gradients.md").read_text()
    assert "| plain-14 | no | 0.01 |" in table and "| ResNet-8 | yes | 0.1 |" in table


def test_gradients_rejects_depths_that_are_not_6n_plus_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("gradients", "--data", "digits", "--depths", "21", "--out", str(tmp_path)) == 2
    assert "6n+2" in capsys.readouterr().err


def _save_checkpoint(path: Path, name: str, in_chans: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    import resnet
    from resnet.models.interop import save_weights

    model = resnet.create_model(name, num_classes=10, in_chans=in_chans)
    preprocess = {"mean": list(mean), "std": list(std), "input_size": 32}
    save_weights(model, path, {"preprocess": preprocess, "classes": [str(i) for i in range(10)], "dataset": "digits"})


def test_responses_of_a_run_folder_and_a_model_name_with_weights(tmp_path: Path) -> None:
    _save_checkpoint(tmp_path / "runs" / "resnet8" / "best.safetensors", "resnet8", 1, (0.2,), (0.3,))
    _save_checkpoint(tmp_path / "plain.safetensors", "plain8", 3, (0.1, 0.1, 0.1), (0.5, 0.5, 0.5))
    out = tmp_path / "resp"
    rc = _run(
        "responses", str(tmp_path / "runs" / "resnet8"), "plain8", "--weights", str(tmp_path / "plain.safetensors"),
        "--data", "digits", "--limit", "40", "--batch-size", "16", "--out", str(out),
    )
    assert rc == 0
    data = json.loads((out / "responses.json").read_text())
    assert data["images"] == 40
    labels = [p["label"] for p in data["profiles"]]
    assert labels == ["ResNet-8", "plain-8"]
    first, second = data["profiles"]
    assert len(first["layers"]) == len(second["layers"]) == 7
    # Each network is fed under the normalisation stored in its own checkpoint.
    assert first["extra"]["normalisation"] == {"mean": [0.2], "std": [0.3]}
    assert second["extra"]["normalisation"]["std"] == [0.5, 0.5, 0.5]
    assert first["sorted_std"] == sorted((x["std"] for x in first["layers"]), reverse=True)
    assert (out / "responses.png").stat().st_size > 0
    assert "| ResNet-8 |" in (out / "responses.md").read_text()


def test_responses_model_name_without_weights_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("responses", "resnet20", "--data", "digits", "--out", str(tmp_path)) == 2
    assert "--weights" in capsys.readouterr().err


def test_depth_table_on_imagenet_layout_data_takes_the_imagenet_depths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("depth-table", "--data", "imagenet", "--depths", "20", "--out", str(tmp_path)) == 2
    assert "--depths from 18, 34, 50, 101, 152" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
