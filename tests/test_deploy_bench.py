"""``resnet bench`` in a tiny configuration prints one row per runner and batch size."""

from __future__ import annotations

import math

import pytest

import resnet
from resnet.cli import main
from resnet.deploy.bench import PEERS, run_bench


def test_bench_prints_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "resnet8", "--batch", "1,2", "--input-size", "16", "--repeats", "2", "--warmup", "1", "--peak-size", "64", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.splitlines()
    labels = [*PEERS, "resnet.deploy fp32", "resnet.deploy bf16", "resnet.deploy int8"]
    for label in labels:
        rows = [line for line in lines if label in line]
        assert len(rows) == 2, f"expected one {label!r} row per batch size:\n{captured.out}"
        assert all("failed" not in row for row in rows), captured.out
    assert "onnxruntime fp32" in captured.out and "1.00x" in captured.out
    assert "peak" in captured.out


def test_run_bench_result_numbers_are_consistent() -> None:
    model = resnet.create_model("resnet8")
    result = run_bench(model, batches=[3], input_size=16, modes=["fp32"], peers=["torchvision eager fp32"], repeats=3, warmup=1, peak_size=64)
    assert result.peaks_gflops["fp32"] > 0 and result.peaks_gflops["bf16"] > 0
    labels = [r.label for r in result.rows]
    assert labels[:2] == ["torchvision eager fp32", "resnet.deploy fp32"]
    # the default engine's row names what auto picked, and is never itself marked as auto's pick
    (default,) = labels[2:]
    assert default.startswith("optimize() default fp32 = ") and not result.rows[2].auto
    for row in result.rows:
        assert row.error is None and len(row.times) == 3
        assert row.p50 <= row.p95 and math.isclose(row.images_per_s, 3 / row.p50)
        assert row.vs_baseline is None  # no ONNX Runtime row to compare with
        assert 0 < row.peak_share
    data = result.as_dict()
    assert data["rows"][1]["label"] == "resnet.deploy fp32" and data["macs_per_image"] > 0


def test_bench_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "resnet8", "--batch", "a,b"]) == 2
    assert main(["bench", "resnet8", "--optimize", "fp16"]) == 2
    assert main(["bench", "resnet8", "--optimize", "none", "--peers", "none"]) == 2
    err = capsys.readouterr().err
    assert "--batch" in err and "fp16" in err and "nothing to measure" in err


def test_peak_share_is_not_applicable_to_emulated_bf16() -> None:
    from resnet.deploy.bench import Row, _ratios

    def rows() -> list[Row]:
        out = [Row("resnet.deploy fp32", "ours", "fp32", 4), Row("resnet.deploy bf16", "ours", "bf16", 4),
               Row("resnet.deploy int8", "ours", "int8", 4)]
        for r in out:
            r.times = [0.1]
        return out

    peaks = {"fp32": 100.0, "bf16": 1.0}  # an emulated bf16 product is ~100x slower than fp32
    emulated = rows()
    _ratios(emulated, macs=10**9, peaks=peaks, bf16_native=False)
    fp32, bf16, int8 = emulated
    assert bf16.peak_share is None and bf16.peak_dtype is None
    assert int8.peak_dtype == "fp32" and math.isclose(int8.peak_share, fp32.peak_share)
    assert math.isclose(fp32.peak_share, 2 * 10**9 * 40 / 100e9)
    native = rows()
    _ratios(native, macs=10**9, peaks={"fp32": 100.0, "bf16": 400.0}, bf16_native=True)
    assert native[1].peak_dtype == "bf16" and math.isclose(native[1].peak_share, 2 * 10**9 * 40 / 400e9)
    assert native[2].peak_dtype == "bf16"
