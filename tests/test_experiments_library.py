"""The experiments run from Python through typed configs, as ``resnet experiment`` runs them."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from resnet.analysis import DegradationConfig, ExperimentResult, GradientsConfig, run_degradation, run_gradients
from resnet.analysis.runs import budgets
from resnet.cli import build_parser, main
from resnet.errors import DataError, UsageError

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny trainings: see conftest


def test_degradation_runs_from_python_and_a_rerun_keeps_the_finished_runs(tmp_path: Path) -> None:
    config = DegradationConfig(data="digits", depths=(8,), budget="tiny", iterations=3, overrides=("batch_size=16",),
                               device="cpu", out=tmp_path / "deg")
    messages: list[str] = []
    result = run_degradation(config, progress=messages.append)
    assert isinstance(result, ExperimentResult) and result.finished and result.unfinished == ()
    assert [p.name for p in result.files] == ["degradation.png", "degradation.md", "degradation.json"]
    assert all(p.parent == tmp_path / "deg" and p.stat().st_size > 0 for p in result.files)
    # The result carries what the JSON file holds.
    assert json.loads((tmp_path / "deg" / "degradation.json").read_text()) == json.loads(json.dumps(result.data))
    curves = result.data["curves"]
    assert [(c["name"], c["status"], c["steps"], c["iterations"]) for c in curves] == [
        ("plain8", "done", 3, 3), ("resnet8", "done", 3, 3)]
    assert list(result.data["settings"]["overrides"]) == ["iterations=3", "eval_every=1", "holdout=150", "batch_size=16"]
    assert result.data["settings"]["budget"] == "tiny" and result.data["settings"]["recipe"] == "cifar-paper"
    assert "| 8 |" in (tmp_path / "deg" / "degradation.md").read_text()
    assert messages[0] == "plain8: training (3 iterations, seed 0)"

    again: list[str] = []
    rerun = run_degradation(config, progress=again.append)
    assert again == ["plain8: finished earlier, kept", "resnet8: finished earlier, kept"]
    assert rerun.data["curves"] == curves
    redrawn = run_degradation(DegradationConfig(data="digits", depths=(8,), plot_only=True, out=tmp_path / "deg"))
    assert redrawn.data["settings"] == result.data["settings"] and redrawn.data["curves"] == curves


def test_gradients_run_from_python(tmp_path: Path) -> None:
    result = run_gradients(GradientsConfig(data="digits", depths=(8,), steps=1, batch_size=8, out=tmp_path))
    assert [p.name for p in result.files] == ["gradients.png", "gradients_backprop.png", "gradients.md", "gradients.json"]
    assert [(r["model"], r["batchnorm"], [s["step"] for s in r["snapshots"]]) for r in result.data["runs"]] == [
        ("plain8", True, [0, 1]), ("resnet8", True, [0, 1])]
    assert result.data["data"] == "digits training split" and result.finished


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        (DegradationConfig(data="digits", depths=(9,)), UsageError, "`depths` must be CIFAR depths 6n+2"),
        (DegradationConfig(data="imagenet", depths=(20,)), UsageError, "`data` imagenet trains the ImageNet nets: `depths` from"),
        (DegradationConfig(data="digits", depths=(8,), parallel=0), UsageError, "`parallel` must be a positive integer"),
        (DegradationConfig(data="digits", depths=(8,), budget="huge"), UsageError, "unknown `budget` 'huge'"),
        (DegradationConfig(data="digits", depths=(8,), budget="tiny", data_dir="/nonexistent/d"), DataError, "check `data_dir`"),
        (GradientsConfig(depths=(8,)), UsageError, "`data` NAME"),
        (GradientsConfig(data="digits", depths=(8,), steps=-1), UsageError, "`steps` must be a non-negative integer"),
    ],
)
def test_bad_configs_name_the_option_as_python_spells_it(tmp_path: Path, config: object, error: type, message: str) -> None:
    config = dataclasses.replace(config, out=tmp_path)  # type: ignore[type-var]
    run = run_gradients if isinstance(config, GradientsConfig) else run_degradation
    with pytest.raises(error) as raised:
        run(config)  # type: ignore[arg-type]
    assert message in str(raised.value) and "--" not in str(raised.value)
    assert not (tmp_path / "runs").exists()  # refused before anything trained


def test_configs_are_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        DegradationConfig().seed = 1  # type: ignore[misc]


def test_a_budget_is_one_entry_of_the_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    extra = budgets.Budget("short", 50, "50 iterations, for a quick look", overrides=("log_every=5",))
    monkeypatch.setitem(budgets.BUDGETS, extra.name, extra)
    degradation = _subparser(_subparser(build_parser(), "experiment"), "degradation")
    option = next(a for a in degradation._actions if a.dest == "budget")
    assert "short" in option.choices and "short: 50 iterations, for a quick look" in option.help
    settings = budgets.budget_settings("short", data="digits", overrides=["lr=0.05"])
    assert settings.iterations == 50
    assert settings.overrides == ("iterations=50", "eval_every=5", "log_every=5", "holdout=150", "lr=0.05")
    # The user's own value of a field the budget sets wins, and is listed once.
    assert budgets.budget_settings("short", data="digits", overrides=["log_every=2"]).overrides[-1] == "log_every=2"
    assert main(["experiment", "degradation", "--budget", "short", "--data", "digits", "--depths", "9",
                 "--out", str(tmp_path)]) == 2  # accepted as a choice; refused for the depth


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_budgets_read_the_recipes() -> None:
    from resnet.train.recipes import RECIPES

    assert budgets.budget_iterations("paper", recipe="cifar-paper") == RECIPES["cifar-paper"].iterations
    assert budgets.budget_iterations("paper", recipe="imagenet-paper") == RECIPES["imagenet-paper"].iterations
    assert budgets.budget_settings("paper", data="imagenet").recipe == "imagenet-paper"
