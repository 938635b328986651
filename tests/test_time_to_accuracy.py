"""benchmarks/time_to_accuracy.py's time to a target accuracy (issue 30: "report the time to 93 %"): the first
evaluation at or above the target, with the evaluations' own seconds left out, read from a real run's metrics."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import time_to_accuracy as tta  # noqa: E402

from resnet.train import TrainOptions, train  # noqa: E402
from resnet.train.metrics import read_metrics  # noqa: E402


def test_time_to_a_target_is_the_first_evaluation_there_without_the_evaluations(tmp_path: Path) -> None:
    sets = {"iterations": "12", "eval_every": "4", "log_every": "4", "batch_size": "32", "holdout": "0"}
    train(TrainOptions(model="resnet8", data="digits", overrides=sets, out=tmp_path, progress=False, tensorboard=False))
    records = read_metrics(tmp_path / "metrics.jsonl")
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [4, 8, 12]
    spent = [r["eval_seconds"] for r in evals]
    assert 0 < spent[0] < spent[1] < spent[2] and all(r["eval_seconds"] < r["elapsed"] for r in evals)
    best = max(100 - r["test_error"] for r in evals)
    reached, never = tta.times_to(records, [0.0, 101.0], batch_size=32)
    first = evals[0]
    assert reached == {"target": 0.0, "accuracy": round(100 - first["test_error"], 2), "epoch": round(4 * 32 / 50_000, 2),
                       "wall_s": first["elapsed"], "train_s": round(first["elapsed"] - first["eval_seconds"], 1)}
    assert never["epoch"] is None and never["train_s"] is None
    top = tta.times_to(records, [best], batch_size=32)[0]  # the first evaluation that scored the best accuracy
    assert top["accuracy"] == round(best, 2) and top["wall_s"] == next(r["elapsed"] for r in evals if 100 - r["test_error"] >= best)


def test_processes_run_the_same_command_under_torchrun_with_the_cores_shared_out(monkeypatch) -> None:
    import os

    import pytest

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    alone, env = tta.launch(1)
    assert alone == [sys.executable] and env["OMP_NUM_THREADS"] == "4"
    two, env = tta.launch(2)
    assert two == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert env["OMP_NUM_THREADS"] == "2" and os.environ["OMP_NUM_THREADS"] == "4"  # the caller's own is left alone
    with pytest.raises(SystemExit, match="--processes 8 exceeds this machine's 4 cores; use at most 4"):
        tta.launch(8)
    with pytest.raises(SystemExit, match="--processes must be at least 1, got 0"):
        tta.launch(0)
