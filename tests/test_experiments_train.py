"""``resnet experiment degradation`` / ``depth-table`` end to end: real (tiny) trainings on the embedded digits.

These need the trainer, ``resnet.train.train`` (docs/dev/trainer-contract.md); while a build lacks it
they are skipped, and the planning/resuming/reading logic is still covered by test_experiments_runs.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from resnet.cli import main


def _trainer_missing() -> str | None:
    try:
        from resnet.train import TrainOptions, train  # noqa: F401
    except ImportError as err:
        return f"needs the trainer resnet.train.train, which this build lacks yet ({err})"
    return None


pytestmark = [
    pytest.mark.skipif(_trainer_missing() is not None, reason=_trainer_missing() or ""),
    pytest.mark.usefixtures("single_thread"),  # tiny trainings: see conftest
]

# Two depths, 6 iterations of 16 images, an evaluation after every iteration: ~2 s per network.
TINY = ["--data", "digits", "--budget", "tiny", "--iterations", "6", "--set", "batch_size=16"]


def _run(*argv: str) -> int:
    return main(["experiment", *argv])


@pytest.fixture(scope="module")
def degradation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("degradation")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module scope: set up before the function-scoped single_thread fixture
    try:
        assert _run("degradation", *TINY, "--depths", "8", "14", "--out", str(out)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_degradation_trains_plain_and_residual_nets_and_draws_figure_6(degradation: Path) -> None:
    for name in ("degradation.png", "degradation.md", "degradation.json"):
        assert (degradation / name).stat().st_size > 0
    data = json.loads((degradation / "degradation.json").read_text())
    curves = data["curves"]
    assert [(c["name"], c["status"], c["steps"]) for c in curves] == [
        ("plain8", "done", 6), ("plain14", "done", 6), ("resnet8", "done", 6), ("resnet14", "done", 6),
    ]
    for c in curves:
        assert [step for step, _ in c["test"]] == [1, 2, 3, 4, 5, 6]  # eval_every = max(1, 6 // 10)
        assert [step for step, _ in c["train"]] == [1, 2, 3, 4, 5, 6]  # shorter than a log interval: eval windows
        assert all(0 <= e <= 100 for _, e in c["train"] + c["test"])
        # The table's final numbers are the last evaluation of the trainer's own log.
        records = [json.loads(x) for x in (degradation / "runs" / c["name"] / "metrics.jsonl").read_text().splitlines()]
        last = [r for r in records if r["kind"] == "eval"][-1]
        assert (c["final_train_error"], c["final_test_error"]) == (last["train_error"], last["test_error"])
    assert data["settings"]["overrides"] == ["iterations=6", "eval_every=1", "holdout=150", "batch_size=16"]
    recipe = json.loads((degradation / "runs" / "plain8" / "recipe.json").read_text())["recipe"]
    assert (recipe["iterations"], recipe["eval_every"], recipe["batch_size"]) == (6, 1, 16)
    assert recipe["milestones"] == [3, 4]  # the cifar-paper schedule scaled by the trainer: ÷10 at 50 % and 75 %
    table = (degradation / "degradation.md").read_text()
    assert "| 8 |" in table and "| 14 |" in table and "## What this run shows" in table
    assert "- plain-14 vs plain-8: training error" in table


def test_rerunning_keeps_finished_runs_and_plot_only_redraws(degradation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.stat().st_mtime_ns for p in degradation.glob("runs/*/metrics.jsonl")}
    assert _run("degradation", *TINY, "--depths", "8", "14", "--out", str(degradation)) == 0
    assert capsys.readouterr().err.count("finished earlier, kept") == 4
    assert {p: p.stat().st_mtime_ns for p in degradation.glob("runs/*/metrics.jsonl")} == before
    (degradation / "degradation.png").unlink()
    assert _run("degradation", "--plot-only", "--data", "digits", "--depths", "8", "14", "--out", str(degradation)) == 0
    assert (degradation / "degradation.png").is_file()
    assert "budget `tiny`" in (degradation / "degradation.md").read_text()


def test_a_run_left_unfinished_is_resumed_not_restarted(degradation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = degradation / "runs" / "resnet8"
    marker = json.loads((folder / "experiment.json").read_text())
    (folder / "experiment.json").write_text(json.dumps({**marker, "status": "partial"}))
    lines = (folder / "metrics.jsonl").read_text()
    assert _run("degradation", *TINY, "--depths", "8", "--out", str(degradation)) == 0
    assert "resnet8: resuming" in capsys.readouterr().err
    # Resumed at the checkpoint of the last step: nothing retrained, no record logged twice.
    assert (folder / "metrics.jsonl").read_text() == lines
    assert json.loads((folder / "experiment.json").read_text())["status"] == "done"


def test_other_settings_in_the_same_out_are_refused(degradation: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["degradation", "--data", "digits", "--budget", "tiny", "--iterations", "8", "--set", "batch_size=16"]
    assert _run(*argv, "--depths", "8", "--out", str(degradation)) == 2
    err = capsys.readouterr().err
    assert "trained under other settings" in err and "iterations: folder 6 vs now 8" in err and "Traceback" not in err


def test_depth_table_reports_mean_and_std_over_runs(tmp_path: Path) -> None:
    out = tmp_path / "table"
    assert _run("depth-table", *TINY, "--depths", "8", "--runs", "2", "--out", str(out)) == 0
    data = json.loads((out / "depth_table.json").read_text())
    (row,) = data["rows"]
    assert (row["network"], row["runs"]) == ("ResNet-8", 2)
    errors = [c["final_test_error"] for c in data["curves"]]
    assert [c["name"] for c in data["curves"]] == ["resnet8", "resnet8-run2"]
    assert [c["seed"] for c in data["curves"]] == [0, 1]
    assert row["test_errors"] == errors and row["mean"] == pytest.approx(sum(errors) / 2)
    assert (out / "depth_table.png").stat().st_size > 0
    assert "| ResNet-8 | 2 |" in (out / "depth_table.md").read_text()


def test_parallel_runs_train_in_subprocesses(tmp_path: Path) -> None:
    out = tmp_path / "par"
    assert _run("degradation", *TINY, "--depths", "8", "--parallel", "2", "--out", str(out)) == 0
    for name in ("plain8", "resnet8"):
        log = (out / "runs" / name / "train.log").read_text()
        assert f" -m resnet.analysis.runs.worker {name}\n" in log and " -m resnet train " not in log  # the library's entry point
        assert json.loads((out / "runs" / name / "experiment.json").read_text())["status"] == "done"
    assert len(json.loads((out / "degradation.json").read_text())["curves"]) == 2


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--set", "lrr=0.1"], 2, "unknown recipe field lrr"),
        (["--set", "iterations=5"], 2, "--iterations N"),
        (["--parallel", "0"], 2, "--parallel must be a positive integer"),
        (["--depths", "9"], 2, "6n+2"),
        (["--data-dir", "/nonexistent/cifar"], 1, "does not exist"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str) -> None:
    assert _run("degradation", *TINY, "--depths", "8", *argv, "--out", str(tmp_path)) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # refused before anything trained


def test_plot_only_without_runs_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("depth-table", "--plot-only", "--out", str(tmp_path)) == 2
    assert "run without --plot-only first" in capsys.readouterr().err
