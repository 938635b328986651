"""Planning, resuming and reading back an experiment's training runs, without training anything.

The trainer is replaced by fakes that write what the trainer contract promises
(``docs/dev/trainer-contract.md``): ``metrics.jsonl`` and ``last.state.pt`` in the run folder.
"""

from __future__ import annotations

import json
import math
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from resnet.analysis import runs as R
from resnet.analysis.runs import scheduler
from resnet.analysis.experiments import claim_checks, degradation_markdown, depth_table_markdown, depth_table_rows, json_text
from resnet.analysis.plots import plot_degradation, plot_depth_table
from resnet.errors import DataError, ResNetError, UsageError

pytestmark = pytest.mark.usefixtures("single_thread")  # see conftest


def _settings(**kw: Any) -> R.TrainSettings:
    base = dict(data="digits", data_dir=None, recipe="cifar-paper", iterations=40, overrides=("iterations=40", "eval_every=4"))
    base.update(kw)
    return R.TrainSettings(**base)  # type: ignore[arg-type]


def _write_metrics(folder: Path, iterations: int, *, error: float = 50.0, extra_lines: str = "") -> None:
    """A finished run as the trainer logs it: a train record every 5 steps, an eval record every 10."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(5, iterations + 1, 5):
        lines.append({"kind": "train", "step": step, "epoch": step / 10, "loss": 1.0, "error": error + 100 / step,
                      "lr": 0.1, "images_per_s": 100.0, "elapsed": step * 0.1})
        if step % 10 == 0:
            lines.append({"kind": "eval", "step": step, "train_error": error + 50 / step, "train_loss": 1.0,
                          "holdout_error": None, "holdout_loss": None, "test_error": error + 5 + 60 / step, "test_loss": 1.2,
                          "elapsed": step * 0.1})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + extra_lines)


# -- plans and budgets ----------------------------------------------------------------------------------
def test_plans_name_plain_and_residual_runs_and_give_repeats_their_own_seed(tmp_path: Path) -> None:
    plans = R.plan_runs(tmp_path, [20, 56], runs=2, seed=7)
    assert [(p.name, p.model, p.seed, p.residual) for p in plans] == [
        ("plain20", "plain20", 7, False), ("plain20-run2", "plain20", 8, False),
        ("plain56", "plain56", 7, False), ("plain56-run2", "plain56", 8, False),
        ("resnet20", "resnet20", 7, True), ("resnet20-run2", "resnet20", 8, True),
        ("resnet56", "resnet56", 7, True), ("resnet56-run2", "resnet56", 8, True),
    ]
    assert plans[0].folder == tmp_path / "runs" / "plain20"
    assert [p.name for p in R.plan_runs(tmp_path, [8], plain=False)] == ["resnet8"]
    with pytest.raises(UsageError, match="`runs`"):
        R.plan_runs(tmp_path, [8], runs=0)


def test_budgets_shorten_the_recipe_through_iterations_and_eval_every_only() -> None:
    reduced = R.budget_settings("reduced", data="cifar10", data_dir="/d", device="cpu")
    assert reduced.iterations == R.REDUCED_ITERATIONS == 700
    # milestones: scaled by the trainer; CIFAR nets train on all 50k images, as the paper's reported ones did
    assert reduced.overrides == ("iterations=700", "eval_every=70", "holdout=0")
    assert reduced.recipe == "cifar-paper" and reduced.budget == "reduced"
    paper = R.budget_settings("paper", data="cifar10")
    assert paper.iterations == 64_000 and paper.overrides == ("holdout=0",)  # otherwise the recipe untouched
    assert R.budget_settings("paper", data="cifar10", overrides=["holdout=5000"]).overrides == ("holdout=5000",)
    assert R.budget_settings("paper", data="imagenet", data_dir="/i").recipe == "imagenet-paper"
    tiny = R.budget_settings("tiny", data="digits", iterations=6, overrides=["batch-size=16", "holdout=100"])
    # digits is too small for the recipe's 5k hold-out, unless the user says otherwise; --set comes last
    assert tiny.overrides == ("iterations=6", "eval_every=1", "batch_size=16", "holdout=100")
    assert R.budget_settings("tiny", data="digits").overrides[-1] == "holdout=150"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget": "huge"}, "unknown `budget`"),
        ({"iterations": 0}, "`iterations` must be positive"),
        ({"overrides": ["iterations=5"]}, "`iterations` N"),
        ({"overrides": ["lr"]}, "KEY=VALUE"),
    ],
)
def test_bad_budget_settings_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    budget = kwargs.pop("budget", "tiny")
    with pytest.raises(UsageError, match=message):
        R.budget_settings(budget, data="digits", **kwargs)


def test_train_command_runs_the_library_worker_with_every_setting(tmp_path: Path) -> None:
    """A subprocess run goes through the library's entry point (never the user-facing command line) and carries
    the plan and every setting."""
    import json

    plan = R.plan_runs(tmp_path, [8], plain=False, seed=3)[0]
    settings = _settings(data_dir="/data", device="cpu")
    cmd = R.train_command(plan, settings)
    assert cmd[:3] == [sys.executable, "-m", "resnet.analysis.runs.worker"] and len(cmd) == 4
    assert "train" not in cmd and not any(part.startswith("--") for part in cmd)
    assert R.read_job(json.loads(cmd[3])) == (plan, settings)


def test_the_worker_trains_through_train_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from resnet.analysis.runs import scheduler, worker
    from resnet.errors import DataError

    plan = R.plan_runs(tmp_path, [8], plain=False, seed=3)[0]
    seen: list[Any] = []
    monkeypatch.setattr(worker, "train_in_process", lambda p, s: seen.append((p, s)) or {"finished": True})
    job = R.train_command(plan, _settings())[3]
    assert worker.main([job]) == 0 and seen == [(plan, _settings())]

    def no_data(p: Any, s: Any) -> None:
        raise DataError("no data here")

    monkeypatch.setattr(worker, "train_in_process", no_data)
    assert worker.main([job]) == 1
    assert worker.main([json.dumps({"plan": {}})]) == 2  # not a job: a usage error
    assert scheduler.WORKER == worker.__name__


def test_train_in_process_calls_the_trainer_as_its_contract_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    @dataclass
    class TrainOptions:  # the contract's fields, nothing more
        model: str
        data: str
        data_dir: str | None
        recipe: str
        overrides: dict[str, str] = field(default_factory=dict)
        out: Path | None = None
        seed: int = 0
        device: str | None = None
        resume: bool = False
        deterministic: bool = False
        progress: bool = True

    def train(opts: TrainOptions) -> dict[str, Any]:
        seen.append(opts)
        return {"finished": True, "steps": 40}

    monkeypatch.setitem(sys.modules, "resnet.train", types.SimpleNamespace(TrainOptions=TrainOptions, train=train))
    plan = R.plan_runs(tmp_path, [14], residual=False, seed=2)[0]
    assert R.train_in_process(plan, _settings(overrides=("iterations=40", "eval_every=4", "lr=0.05"))) == {"finished": True, "steps": 40}
    opts = seen[0]
    assert (opts.model, opts.data, opts.recipe, opts.out, opts.seed, opts.device) == ("plain14", "digits", "cifar-paper", plan.folder, 2, "cpu")
    assert opts.overrides == {"iterations": "40", "eval_every": "4", "lr": "0.05"}
    assert opts.resume is True  # the contract: resumes when a checkpoint exists, starts fresh otherwise


# -- status of a run folder -------------------------------------------------------------------------
def test_run_status_new_partial_done_and_foreign_folders(tmp_path: Path) -> None:
    settings = _settings()
    plan = R.plan_runs(tmp_path, [8], plain=False)[0]
    assert R.run_status(plan, settings) == "new"
    plan.folder.mkdir(parents=True)
    R.write_marker(plan, settings, "partial")
    assert R.run_status(plan, settings) == "new"  # nothing to resume yet
    (plan.folder / R.STATE_FILE).write_bytes(b"state")
    assert R.run_status(plan, settings) == "partial"
    R.write_marker(plan, settings, "done")
    assert R.run_status(plan, settings) == "done"
    (plan.folder / R.STATE_FILE).unlink()  # deleting the state to save space keeps a finished run finished
    assert R.run_status(plan, settings) == "done"

    other = _settings(iterations=80, overrides=("iterations=80", "eval_every=8"))
    with pytest.raises(UsageError, match="iterations: folder 40 vs now 80"):
        R.run_status(plan, other)
    # A run under other settings that never reached a checkpoint has nothing to lose: it starts again.
    R.write_marker(plan, settings, "partial")
    assert R.run_status(plan, other) == "new"
    # The same overrides listed in another order (a budget's own fields, then the user's) are the same training.
    R.write_marker(plan, settings, "done")
    assert R.run_status(plan, _settings(overrides=tuple(reversed(settings.overrides)))) == "done"
    (plan.folder / R.MARKER).write_text("{not json")
    with pytest.raises(ResNetError, match="unreadable"):
        R.run_status(plan, settings)


# -- executing plans with a fake trainer --------------------------------------------------------------
class FakeTrainer:
    """Writes a finished run's files; fails for the networks named in ``fail`` with the given error."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail or {}

    def __call__(self, plan: R.RunPlan, settings: R.TrainSettings) -> dict[str, Any]:
        self.calls.append(plan.name)
        if plan.name in self.fail:
            raise self.fail[plan.name]
        _write_metrics(plan.folder, settings.iterations, error=10.0 + plan.depth / 2 if not plan.residual else 10.0)
        (plan.folder / R.STATE_FILE).write_bytes(b"state")
        return {"finished": True, "steps": settings.iterations}


def test_execute_trains_each_net_once_and_keeps_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTrainer(fail={"plain14": ResNetError("the loss became nan at iteration 3")})
    monkeypatch.setattr(scheduler, "train_in_process", fake)
    plans = R.plan_runs(tmp_path, [8, 14])
    messages: list[str] = []
    outcomes = R.execute(plans, _settings(), progress=messages.append)
    assert fake.calls == ["plain8", "plain14", "resnet8", "resnet14"]  # a failure does not stop the others
    assert [(o.plan.name, o.status, o.error) for o in outcomes] == [
        ("plain8", "done", None), ("plain14", "new", "the loss became nan at iteration 3"),
        ("resnet8", "done", None), ("resnet14", "done", None),
    ]
    assert json.loads((plans[0].folder / R.MARKER).read_text())["status"] == "done"

    fake.calls.clear()
    fake.fail.clear()
    outcomes = R.execute(plans, _settings(), progress=messages.append)
    assert fake.calls == ["plain14"]  # the three finished runs are never redone
    assert [o.skipped for o in outcomes] == [True, False, True, True]
    assert "plain8: finished earlier, kept" in messages


def test_execute_stops_at_once_on_bad_settings_and_on_ctrl_c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plans = R.plan_runs(tmp_path, [8, 14])
    for error in (DataError("no CIFAR-10 under /nowhere"), UsageError("unknown recipe field lrr")):
        fake = FakeTrainer(fail={"plain8": error})
        monkeypatch.setattr(scheduler, "train_in_process", fake)
        with pytest.raises(type(error)):
            R.execute(plans, _settings())
        assert fake.calls == ["plain8"]

    class Interrupted(ResNetError):
        exit_code = 130  # what the trainer raises after checkpointing on Ctrl-C

    for error in (KeyboardInterrupt(), Interrupted("interrupted by SIGINT at iteration 7")):
        monkeypatch.setattr(scheduler, "train_in_process", FakeTrainer(fail={"plain8": error}))  # type: ignore[dict-item]
        with pytest.raises(R.ExperimentInterrupted, match="rerun the same command to resume"):
            R.execute(plans, _settings())


def test_an_unfinished_summary_leaves_the_run_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def stopped(plan: R.RunPlan, settings: R.TrainSettings) -> dict[str, Any]:
        (plan.folder / R.STATE_FILE).write_bytes(b"state")
        return {"finished": False, "steps": 12, "stop_reason": "time limit reached at iteration 12"}

    monkeypatch.setattr(scheduler, "train_in_process", stopped)
    plan = R.plan_runs(tmp_path, [8], plain=False)[0]
    (outcome,) = R.execute([plan], _settings())
    assert outcome.status == "partial" and "time limit" in str(outcome.error)
    assert json.loads((plan.folder / R.MARKER).read_text())["status"] == "partial"


# -- reading curves back --------------------------------------------------------------------------
def test_read_curves_turns_metrics_into_curves(tmp_path: Path) -> None:
    plans = R.plan_runs(tmp_path, [8, 14])
    settings = _settings()
    resumed_twice = json.dumps({"kind": "eval", "step": 40, "train_error": 1.5, "train_loss": 0.1, "holdout_error": None,
                                "holdout_loss": None, "test_error": 2.5, "test_loss": 0.2, "elapsed": 9.0})
    _write_metrics(plans[0].folder, 40, extra_lines=resumed_twice + "\n" + '{"kind": "train", "step": 4')  # cut by a kill
    R.write_marker(plans[0], settings, "done", seconds=12.5)
    _write_metrics(plans[3].folder, 20)  # resnet14: unfinished, no marker yet
    curves = R.read_curves(plans)
    assert [c["name"] for c in curves] == ["plain8", "resnet14"]  # folders without a log are left out
    plain8, resnet14 = curves
    assert plain8["train"] == [[s, 50.0 + 100 / s] for s in range(5, 41, 5)]
    assert plain8["test"] == [[10, 61.0], [20, 58.0], [30, 57.0], [40, 2.5]]  # the record logged last wins
    assert plain8["holdout"] == []
    assert (plain8["final_train_error"], plain8["final_test_error"], plain8["final_holdout_error"]) == (1.5, 2.5, None)
    assert (plain8["status"], plain8["iterations"], plain8["steps"], plain8["seconds"]) == ("done", 40, 40, 12.5)
    assert (resnet14["status"], resnet14["depth"], resnet14["residual"], resnet14["steps"]) == ("partial", 14, True, 20)
    json_text(curves)  # finite numbers only: the experiment's JSON refuses NaN


def test_read_curves_uses_the_evaluation_windows_for_runs_shorter_than_a_log_interval(tmp_path: Path) -> None:
    plan = R.plan_runs(tmp_path, [8], plain=False)[0]
    plan.folder.mkdir(parents=True)
    evals = [{"kind": "eval", "step": s, "train_error": 90.0 - s, "test_error": 91.0 - s, "holdout_error": 80.0} for s in (1, 2, 3)]
    train = [{"kind": "train", "step": 3, "error": 88.0}]
    (plan.folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in evals + train))
    (plan.folder / "summary.json").write_text(json.dumps({"finished": True}))  # trained by hand: no marker
    (curve,) = R.read_curves([plan])
    assert curve["train"] == [[1, 89.0], [2, 88.0], [3, 87.0]]
    assert curve["holdout"] == [[1, 80.0], [2, 80.0], [3, 80.0]] and curve["status"] == "done"


def test_settings_from_markers_for_plot_only(tmp_path: Path) -> None:
    plans = R.plan_runs(tmp_path, [8, 14])
    assert R.settings_from_markers(plans) is None
    settings = _settings(data_dir="/d", budget="tiny")
    for plan in plans[:2]:
        plan.folder.mkdir(parents=True)
        R.write_marker(plan, settings, "done")
    assert R.settings_from_markers(plans) == settings
    plans[2].folder.mkdir(parents=True)
    R.write_marker(plans[2], _settings(iterations=80, overrides=("iterations=80",)), "done")
    with pytest.raises(UsageError, match="different settings"):
        R.settings_from_markers(plans)


def test_describe_settings_names_recipe_length_and_overrides() -> None:
    text = R.describe_settings(_settings(data_dir="/d", budget="tiny"))
    assert "recipe `cifar-paper`" in text and "40 iterations" in text and "`eval_every=4`" in text and "from `/d`" in text
    assert "budget huge" in R.describe_settings(None, "huge")


# -- tables and figures from curves ---------------------------------------------------------------------
def _curve(depth: int, residual: bool, train: float, test: float, *, seed: int = 0, status: str = "done") -> dict[str, Any]:
    return {"name": f"{'resnet' if residual else 'plain'}{depth}", "depth": depth, "residual": residual, "seed": seed,
            "status": status, "iterations": 100, "steps": 100 if status == "done" else 50,
            "train": [[50, train + 10], [100, train]], "test": [[50, test + 10], [100, test]],
            "final_train_error": train, "final_test_error": test, "classes": 10}


def test_degradation_table_reports_what_the_runs_show(tmp_path: Path) -> None:
    curves = [_curve(20, False, 10.0, 12.0), _curve(56, False, 14.0, 16.0), _curve(20, True, 9.0, 11.0),
              _curve(56, True, 11.0, 12.5, status="partial")]
    checks = claim_checks(curves)
    assert checks[0].startswith("- plain-56 vs plain-20: training error 14.00 % vs 10.00 %; degradation: reproduced (the deeper "
                                "plain net trains worse (+4.00 points")
    assert checks[1].startswith("- ResNet-56 vs ResNet-20: training error 11.00 % vs 9.00 %; deeper ResNets train at least as "
                                "well: not reproduced (the deeper ResNet trains worse")
    assert "- depth 56: ResNet training error 11.00 % vs plain 14.00 % (lower with shortcuts)." in checks
    text = degradation_markdown(curves, "setup line", "cifar10")
    assert "| 20 | 10.00 | 12.00 | 9.00 | 11.00 | 8.75 | 100 / 100 |" in text
    assert "| 56 | 14.00 | 16.00 | 11.00 | 12.50 | 6.97 | 100 / 50 of 100 (unfinished) |" in text
    assert plot_degradation(curves, tmp_path / "fig.png").stat().st_size > 10_000


def test_depth_table_rows_mean_and_sample_std_over_finished_runs(tmp_path: Path) -> None:
    curves = [_curve(110, True, 1.0, e, seed=s) for s, e in enumerate((6.0, 7.0, 8.0))]
    curves.append(_curve(110, True, 1.0, 99.0, seed=3, status="partial"))  # unfinished runs do not count
    curves.append(_curve(20, True, 1.0, 8.0))
    rows = depth_table_rows(curves)
    assert [r["network"] for r in rows] == ["ResNet-20", "ResNet-110"]
    r110 = rows[1]
    assert (r110["runs"], r110["mean"], r110["best"], r110["paper"]) == (3, 7.0, 6.0, 6.43)
    assert math.isclose(r110["std"], 1.0)  # sample std, like the paper's 6.61 ± 0.16
    assert rows[0]["std"] is None
    text = depth_table_markdown(rows, "setup")
    assert "| ResNet-110 | 3 | 7.00 ± 1.00 | 6.00 | 6.00, 7.00, 8.00 | 6.43 (best of 5; 6.61 ± 0.16) |" in text
    imagenet = depth_table_rows([_curve(18, False, 1.0, 30.0), _curve(34, True, 1.0, 26.0)], imagenet=True)
    assert [(r["network"], r["paper"]) for r in imagenet] == [("ResNet-34", 24.52), ("plain-18", 27.94)]
    assert plot_depth_table(rows, tmp_path / "t.png").stat().st_size > 5_000
