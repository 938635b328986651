"""Issue 14: short runs and stopping. Evaluation frequency under an ``iterations`` override, a true speed
figure, Ctrl-C arriving in the middle of an evaluation, and ``--resume --stop-after`` already passed."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from pathlib import Path

import pytest

from resnet.cli import main
from resnet.train import TrainOptions, train
from resnet.train import tasks as loop_module  # where the classification task loads its data
from resnet.train.checkpoint import load_state
from resnet.train.recipes import resolve_recipe

TINY = {"iterations": "24", "eval_every": "8", "log_every": "4", "batch_size": "32", "holdout": "100"}


def _opts(out: Path, **kw: object) -> TrainOptions:
    base = dict(model="resnet8", data="digits", overrides=dict(TINY), out=out, progress=False, tensorboard=False)
    base.update(kw)
    return TrainOptions(**base)  # type: ignore[arg-type]


def test_an_iterations_override_keeps_evaluation_rare_enough() -> None:
    short = resolve_recipe("cifar-paper", {"iterations": "60"})
    # 15,000 hold-out + test images cost about as much as 40 training steps of 128: not every 6 steps.
    assert short.evaluation_interval_for(15_000) == 40
    assert resolve_recipe("cifar-paper", {}).evaluation_interval_for(15_000) == 6_400  # the paper's run: a tenth
    assert resolve_recipe("cifar-paper", {"iterations": "60", "eval_every": "5"}).evaluation_interval_for(15_000) == 5
    assert resolve_recipe("cifar-paper", {"iterations": "10"}).evaluation_interval_for(15_000) == 10  # once, at the end


def test_a_run_shorter_than_one_log_window_reports_a_true_speed(tmp_path: Path) -> None:
    summary = train(_opts(tmp_path / "r", overrides={**TINY, "iterations": "3", "log_every": "50", "eval_every": "0"}))
    assert summary["steps"] == 3 and summary["images_per_s"] and summary["images_per_s"] > 0
    summary = train(_opts(tmp_path / "s", overrides={**TINY, "log_every": "50"}, stop_after=2))
    assert summary["steps"] == 2 and summary["images_per_s"] > 0


def test_ctrl_c_during_an_evaluation_abandons_it_and_reports_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    real_load = loop_module.load_train_data
    served: list[int] = []

    def load_with_interrupting_test_set(*args: object, **kwargs: object):  # noqa: ANN202
        data = real_load(*args, **{**kwargs, "eval_batch": 40})  # several test batches
        batches = data.test.batches

        def interrupting():  # noqa: ANN202 - Ctrl-C arrives while the first test batch is evaluated
            for i, batch in enumerate(batches()):
                served.append(i)
                if i == 0:
                    os.kill(os.getpid(), signal.SIGINT)
                yield batch

        data.test.batches = interrupting
        return data

    monkeypatch.setattr(loop_module, "load_train_data", load_with_interrupting_test_set)
    out = tmp_path / "run"
    overrides = ["--set", "iterations=24", "--set", "eval_every=8", "--set", "batch_size=32", "--set", "holdout=100"]
    rc = main(["train", "resnet8", "--data", "digits", "--out", str(out), "--no-tensorboard", *overrides])
    captured = capsys.readouterr()
    assert rc == 130
    assert served == [0]  # abandoned before evaluating the batch during which Ctrl-C came, not after all 9
    assert (captured.out + captured.err).count("interrupted by SIGINT") == 1
    state = load_state(out)
    assert state is not None and state["step"] == 8  # the last finished step
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert not any(r["kind"] == "eval" for r in records)  # no half-done evaluation recorded


def test_resume_with_stop_after_already_passed_stops_at_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = train(_opts(out, stop_after=16))
    assert first["steps"] == 16 and not first["finished"]
    before = (out / "last.safetensors").stat().st_mtime_ns
    again = train(_opts(out, resume=True, stop_after=8))
    assert again["steps"] == 16 and "already past" in again["stop_reason"]
    assert (out / "last.safetensors").stat().st_mtime_ns == before  # nothing trained, nothing rewritten


def test_eval_of_a_digits_run_needs_no_data_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    train(_opts(out, overrides={**TINY, "holdout": "0", "precision": "fp32"}))
    assert main(["eval", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"].startswith("digits test") and report["images"] > 100


def test_final_training_error_is_the_last_logging_window_and_says_which(tmp_path: Path) -> None:
    """Issue 34, item 8: not the average since the last evaluation (here the whole run)."""
    out = tmp_path / "run"
    summary = train(_opts(out, overrides={**TINY, "iterations": "60", "log_every": "20", "eval_every": "60"}))
    windows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in windows if r["kind"] == "train"]
    assert [r["step"] for r in windows] == [20, 40, 60]
    assert summary["final"]["train_error"] == windows[-1]["error"]
    assert summary["final"]["train_window"] == [41, 60]
    assert "final training error (iterations 41–60)" in (out / "results.md").read_text()


def test_evaluation_is_kept_to_its_share_of_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 34, item 8: with ``eval_share``, evaluations that fall due are skipped when evaluating would take more
    than that share of the run's wall time; the last one always runs. Each evaluation here is made to take a second."""
    import time

    real = loop_module.Classification.evaluate

    def slow(self, net, split, abandon):  # noqa: ANN001, ANN202
        time.sleep(0.5)
        return real(self, net, split, abandon)

    monkeypatch.setattr(loop_module.Classification, "evaluate", slow)

    def eval_steps(out: Path) -> list[int]:
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return [r["step"] for r in records if r["kind"] == "eval"]

    train(_opts(tmp_path / "all", overrides={**TINY, "iterations": "6", "eval_every": "1", "eval_share": "0"}))
    assert eval_steps(tmp_path / "all") == [1, 2, 3, 4, 5, 6]
    capped = train(_opts(tmp_path / "capped", overrides={**TINY, "iterations": "6", "eval_every": "1", "eval_share": "0.2"}))
    steps = eval_steps(tmp_path / "capped")
    assert steps[-1] == 6 and len(steps) <= 2, steps  # at most one before the last: the first timing
    assert capped["eval_seconds"] >= 1.0 and capped["final"]["test_error"] is not None


def test_a_short_run_keeps_its_evaluation_time_for_the_last_evaluation(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 34, item 8: evaluations are planned against the whole run, the last one included. When, by the cost
    assumed before any evaluation is timed, the last evaluation alone fills the share, none falls due before it;
    when the evaluations to come are expected to cost nothing, every one runs."""
    from resnet.train import trainer as trainer_module

    def eval_steps(out: Path) -> list[int]:
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return [r["step"] for r in records if r["kind"] == "eval"]

    sets = {**TINY, "iterations": "6", "eval_every": "1", "eval_share": "0.2"}
    monkeypatch.setattr(trainer_module, "EVAL_IMAGE_COST", 1e6)  # an evaluated image: a million training images
    train(_opts(tmp_path / "dear", overrides=sets))
    assert eval_steps(tmp_path / "dear") == [6]
    monkeypatch.setattr(trainer_module, "EVAL_IMAGE_COST", 0.0)
    monkeypatch.setattr(loop_module.Classification, "eval_images", lambda self, split: 0)  # timed: costs nothing
    train(_opts(tmp_path / "free", overrides={**sets, "eval_share": "0.99"}))  # only what was spent counts
    assert eval_steps(tmp_path / "free") == [1, 2, 3, 4, 5, 6]


def test_dense_recipes_bound_their_evaluations_by_default() -> None:
    for name in ("detection", "segmentation"):
        recipe = resolve_recipe(name)
        assert recipe.task == name and 0 < recipe.eval_share <= 0.2 and recipe.holdout > 0


def test_a_shortened_dense_recipe_keeps_its_warm_up_in_proportion() -> None:
    from resnet.train.schedule import LRSchedule

    short = resolve_recipe("detection", {"iterations": "40"})
    assert short.warmup == 10 and resolve_recipe("detection", {"iterations": "40", "warmup": "0"}).warmup == 0
    lrs = [LRSchedule(short).lr(step) for step in (0, 5, 10, 40)]
    assert lrs[0] == pytest.approx(0.02 * 0.001) and lrs[1] < lrs[2] == pytest.approx(0.02) and lrs[3] == pytest.approx(0.0)


def test_a_run_records_the_command_main_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 29: the command line is passed down from ``main(argv)``; nothing below it reads ``sys.argv``."""
    monkeypatch.setattr(sys, "argv", ["pytest", "something", "else"])
    out = tmp_path / "run"
    argv = ["train", "resnet8", "--data", "digits", "--out", str(out), "--no-tensorboard", "--no-progress",
            "--set", "iterations=2", "--set", "eval_every=2", "--set", "batch_size=16", "--set", "holdout=0"]
    assert main(argv) == 0
    assert f"Command: `{shlex.join(['resnet', *argv])}`" in (out / "results.md").read_text()
