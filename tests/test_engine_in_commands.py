"""``--engine`` in predict, eval and serve: the engine that runs an optimised mode is chosen as asked and shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from resnet.inference import choice
from resnet.inference.engines import ENGINE_LABELS
from resnet.serve import ServeConfig, create_app, load_member
from resnet.serve.app import describe_model

from test_no_silent_wrong_answers import CLASSES, one_line, run_cli, upright, write_ckpt, write_tree

pytest.importorskip("onnxruntime")


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[Path]]:
    """A checkpoint that records its training folder (calibration images), two photos and a private engine cache."""
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RESNET_ENGINE_CACHE", raising=False)  # the choices go to RESNET_CACHE_DIR
    monkeypatch.setattr(choice, "MEASURE_BUDGET_S", 0.05)
    train = write_tree(tmp_path / "data", CLASSES, splits=("train", "val"))
    ckpt = write_ckpt(tmp_path / "run" / "best.safetensors", dataset="imagenet", data_dir=str(train))
    photos = [tmp_path / "a.png", tmp_path / "b.png"]
    Image.fromarray(upright()).save(photos[0])
    Image.fromarray(255 - upright()).save(photos[1])
    return ckpt, photos


def _predict(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    rc, out, err = run_cli(["predict", *args, "--json"], capsys)
    assert rc == 0, err
    return json.loads(out), err


def _top1(result: dict) -> list[str]:
    return [p["top"][0]["class"] for p in result["predictions"]]


def test_predict_runs_on_the_engine_asked_for_and_says_which(run: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, photos = run
    files = [str(ckpt), *map(str, photos)]
    eager, err = _predict(files, capsys)
    assert eager["engine"] == "pytorch eager" and "runs on" not in err
    ours, err = _predict([*files, "--optimize", "fp32", "--engine", "ours"], capsys)
    assert ours["engine"] == "ours" and "--optimize fp32 runs on ours" in err
    default, err = _predict([*files, "--optimize", "fp32"], capsys)  # auto: measured, then named
    assert default["engine"] in ENGINE_LABELS and f"--optimize fp32 runs on {default['engine']}" in err
    ort, err = _predict([*files, "--optimize", "fp32", "--engine", "onnxruntime"], capsys)
    assert ort["engine"] == "onnxruntime" and "--optimize fp32 runs on onnxruntime" in err
    auto, err = _predict([*files, "--optimize", "int8", "--engine", "auto"], capsys)
    assert auto["engine"].split()[0] in ("ours", "onnxruntime", "openvino") and f"runs on {auto['engine']}" in err
    assert _top1(ours) == _top1(ort) == _top1(eager)
    entries = json.loads((ckpt.parents[1] / "cache" / "engines.json").read_text()).values()
    (entry,) = [e for e in entries if e["key"]["mode"] == "int8"]
    assert entry["engine"] == auto["engine"] and entry["key"]["shape"][0] == 64  # at --batch-size, not the 2 photos (issue 34)


def test_engine_flags_that_would_be_ignored_are_refused(run: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, photos = run
    rc, out, err = run_cli(["predict", str(ckpt), str(photos[0]), "--engine", "openvino"], capsys)
    assert rc == 2 and "--engine openvino runs an optimised mode; add --optimize fp32 or int8" in one_line(err)
    rc, out, err = run_cli(["predict", str(ckpt), str(photos[0]), "--optimize", "fp32", "--engine", "ours",
                            "--calibration", str(photos[1])], capsys)
    assert rc == 2 and "--calibration applies to --optimize int8, or to --engine other than ours" in one_line(err)
    rc, out, err = run_cli(["predict", str(ckpt), str(photos[0]), "--optimize", "bf16", "--engine", "onnxruntime"], capsys)
    assert rc == 2 and "--engine onnxruntime runs modes fp32 and int8, not bf16" in one_line(err)
    rc, out, err = run_cli(["serve", str(ckpt), "--optimize", "none", "--engine", "onnxruntime", "--port", "0"], capsys)
    assert rc == 2 and "add --optimize fp32 or int8" in one_line(err)


def test_float_engines_are_checked_on_random_inputs_without_images_and_int8_still_needs_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = write_ckpt(tmp_path / "net.safetensors")  # records no training data
    Image.fromarray(upright()).save(tmp_path / "a.png")
    rc, out, err = run_cli(["predict", str(ckpt), str(tmp_path / "a.png"), "--optimize", "fp32", "--engine", "onnxruntime"], capsys)
    assert rc == 0 and "--optimize fp32 runs on onnxruntime" in err
    rc, out, err = run_cli(["predict", str(ckpt), str(tmp_path / "a.png"), "--optimize", "int8"], capsys)
    assert rc == 1 and "records no training data" in one_line(err)


def test_eval_reports_the_engine(run: tuple[Path, list[Path]], capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, _ = run
    data = ckpt.parents[1] / "data"
    rc, out, err = run_cli(["eval", str(ckpt), "--data-dir", str(data), "--split", "val", "--optimize", "fp32",
                            "--engine", "onnxruntime", "--json"], capsys)
    assert rc == 0, err
    (result,) = json.loads(out)["members"]
    assert result["optimize"] == "fp32" and result["engine"] == "onnxruntime"
    rc, out, err = run_cli(["eval", str(ckpt), "--data-dir", str(data), "--split", "val", "--optimize", "fp32",
                            "--engine", "ours"], capsys)
    assert rc == 0 and "(fp32 on ours)" in out


def test_served_model_names_its_engine(run: tuple[Path, list[Path]]) -> None:
    ckpt, _ = run
    config = ServeConfig(max_batch=4)
    member = load_member(str(ckpt), "fp32", engine="onnxruntime", batch=config.max_batch)
    assert describe_model(member, "fp32", config)["engine"] == "onnxruntime"
    assert describe_model(load_member(str(ckpt), "none"), "none", config)["engine"] == "pytorch eager"
    assert create_app(member, config, mode="fp32") is not None
