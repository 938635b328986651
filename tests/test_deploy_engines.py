"""``optimize(..., engine=...)``: auto measures, chooses by speed and agreement, caches per key; ours stays ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import resnet
from resnet.cli import main
from resnet.deploy import optimize
from resnet.inference import choice
from resnet.inference.choice import Measurement, cache_key, choose, write_choice
from resnet.inference.engines import ENGINE_LABELS, OrtEngine, engine_of
from resnet.errors import ResNetError, UsageError

from deploy_helpers import randomise_bn

pytest.importorskip("onnxruntime")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("RESNET_ENGINE_CACHE", raising=False)  # the choices go to RESNET_CACHE_DIR
    monkeypatch.setattr(choice, "MEASURE_BUDGET_S", 0.05)  # the fewest timed rounds: these tests check the plumbing
    return tmp_path / "engines.json"


def _entries(cache: Path) -> list[dict]:
    return list(json.loads(cache.read_text()).values())


def test_auto_returns_a_measured_engine_equal_to_the_float_model_and_caches_it(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = randomise_bn(resnet.create_model("resnet8"))
    x = torch.randn(2, 3, 16, 16)
    fast = optimize(model, "fp32", engine="auto", example_input=x, calibration=torch.randn(8, 3, 16, 16))
    assert fast.engine in ENGINE_LABELS and engine_of(fast) == fast.engine
    other = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        for batch in (x, other):
            got = fast(batch)
            assert got.dtype == torch.float32 and torch.equal(got.argmax(1), model(batch).argmax(1))
    (entry,) = _entries(cache)
    assert entry["engine"] == fast.engine and entry["key"]["shape"] == [2, 3, 16, 16] and entry["key"]["mode"] == "fp32"
    measured = {m["label"]: m for m in entry["measured"]}
    assert {"ours", "onnxruntime"} <= set(measured) and all(m["seconds"] > 0 for m in measured.values())

    def no_measuring(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the cached choice should have been used")

    monkeypatch.setattr(choice, "measure", no_measuring)
    again = optimize(model, "fp32", engine="auto", example_input=x)
    assert again.engine == fast.engine


def test_a_new_batch_shape_or_mode_measures_again(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = randomise_bn(resnet.create_model("resnet8"))
    calls: list[str] = []
    real = choice.measure

    def counting(cands, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(",".join(c.label for c in cands))
        return real(cands, *args, **kwargs)

    monkeypatch.setattr(choice, "measure", counting)
    calibration = torch.randn(8, 3, 16, 16)
    optimize(model, "fp32", engine="auto", example_input=torch.randn(2, 3, 16, 16))
    optimize(model, "fp32", engine="auto", example_input=torch.randn(3, 3, 16, 16))
    optimize(model, "fp32", engine="auto", example_input=torch.randn(3, 3, 16, 16))  # cached: no measuring
    fast = optimize(model, "int8", engine="auto", example_input=torch.randn(2, 3, 16, 16), calibration=calibration)
    assert len(calls) == 3, calls
    assert calls[2] == "ours,onnxruntime qdq,onnxruntime qoperator-u8u8" or calls[2].startswith("ours,onnxruntime qdq,onnxruntime qoperator-u8u8,")
    assert len(_entries(cache)) == 3
    assert fast(torch.randn(4, 3, 16, 16)).shape == (4, 10)


def test_auto_builds_the_cached_engine(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = resnet.create_model("resnet8").eval()
    x = torch.randn(2, 3, 16, 16)
    write_choice(cache_key(model, "fp32", x.shape, torch.get_num_threads(), "auto"), "onnxruntime", [])
    monkeypatch.setattr(choice, "measure", lambda *a, **k: pytest.fail("measured despite a cached choice"))
    fast = optimize(model, "fp32", engine="auto", example_input=x)
    assert isinstance(fast, OrtEngine) and fast.engine == "onnxruntime"
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x), atol=1e-4)
    # Other weights are another network: the cached choice does not apply, so it measures.
    other = randomise_bn(resnet.create_model("resnet8"), seed=3)
    monkeypatch.setattr(choice, "measure", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("measuring")))
    with pytest.raises(RuntimeError, match="measuring"):
        optimize(other, "fp32", engine="auto", example_input=x)


def test_choose_keeps_the_fastest_that_agrees() -> None:
    measured = [
        Measurement("ours", seconds=0.010, agreement=99.0),
        Measurement("fast but wrong", seconds=0.001, agreement=97.0),
        Measurement("faster, agrees", seconds=0.005, agreement=98.7),
        Measurement("broken", error="no session"),
    ]
    assert choose(measured, images=1000, reference="ours") == "faster, agrees"
    assert choose(measured[:2], images=1000, reference="ours") == "ours"  # ours is always eligible
    assert choose(measured[:2], images=20, reference="ours") == "fast but wrong"  # 2 points is under one image of 20
    with pytest.raises(ResNetError, match="no engine ran"):
        choose(measured[3:], images=10)


def test_ours_never_touches_onnxruntime() -> None:
    code = (
        "import sys, torch, resnet\n"
        "from resnet.deploy import optimize\n"
        "m = resnet.create_model('resnet8').eval()\n"
        "x = torch.randn(2, 3, 16, 16)\n"
        "a = optimize(m, 'fp32', engine='ours', example_input=x)\n"
        "b = optimize(m, 'int8', engine='ours', example_input=x, calibration=torch.randn(4, 3, 16, 16))\n"
        "assert a.engine == b.engine == 'ours', (a.engine, b.engine)\n"
        "assert a(x).shape == b(x).shape == (2, 10)\n"
        "print('onnxruntime' in sys.modules)\n"
    )
    src = str(Path(resnet.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": src})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_engine_usage_errors() -> None:
    model = resnet.create_model("resnet8")
    with pytest.raises(UsageError, match="unknown `engine` 'tensorrt'"):
        optimize(model, "fp32", engine="tensorrt")
    with pytest.raises(UsageError, match="`engine` onnxruntime runs modes fp32 and int8"):
        optimize(model, "bf16", engine="onnxruntime")


def test_auto_is_the_default_and_measures_without_an_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("RESNET_ENGINE_CACHE", raising=False)  # the choices go to RESNET_CACHE_DIR
    model = resnet.create_model("resnet8").eval()
    fast = optimize(model, "fp32")  # no engine, no example: auto, measured at one image of the network's size
    err = capsys.readouterr().err
    assert "measuring" in err and "[1, 3, 32, 32]" in err and fast.engine in ENGINE_LABELS
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(fast(x), model(x), atol=1e-3, rtol=1e-3)
    again = optimize(model, "fp32")  # cached: the same engine, nothing measured
    assert again.engine == fast.engine and "measuring" not in capsys.readouterr().err


def test_bench_lists_every_engine_and_marks_the_choice(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "resnet8", "--batch", "2", "--input-size", "16", "--repeats", "2", "--warmup", "1", "--peak-size", "64",
               "--optimize", "fp32,int8", "--peers", "ort-fp32,ort-int8,ort-int8-u8u8", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    for label in ("onnxruntime fp32", "onnxruntime int8 qdq", "onnxruntime int8 qoperator-u8u8", "resnet.deploy fp32", "resnet.deploy int8"):
        (line,) = [line for line in out.splitlines() if f" {label} " in line]
        assert "failed" not in line, line
    assert out.count("<- auto fp32") == 1 and out.count("<- auto int8") == 1
    assert "memory MiB" in out and "agrees %" in out
