"""Training many networks for one experiment: plan, resume, run (one by one or N at once), read back.

Every network trains into ``OUT/runs/<name>/`` through the trainer (:mod:`resnet.train`, see
``docs/dev/trainer-contract.md``). A small ``experiment.json`` in that folder records what the
experiment asked for (budget, iterations, seed, data) and whether the training finished, so that
rerunning the experiment

- never redoes a finished run,
- resumes an unfinished one (the trainer's ``--resume``),
- refuses to mix a folder trained under other settings into the figure.

``--parallel N`` starts N ``resnet train`` subprocesses (each logging to its folder's ``train.log``);
with N = 1 the trainer runs in this process.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from ..errors import DataError, ResNetError, UsageError
from ..utils.atomic import atomic_write_text

MARKER = "experiment.json"
METRICS = "metrics.jsonl"  # the trainer's log (trainer contract)
STATE = "last.state.pt"  # the trainer's resumable state (trainer contract)
Status = Literal["done", "partial", "new"]
ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class RunPlan:
    name: str  # folder name: "plain20", "resnet56", "resnet110-run2"
    model: str  # network name: "plain20", "resnet110"
    depth: int
    residual: bool
    seed: int
    folder: Path


@dataclass(frozen=True)
class TrainSettings:
    """What every run of one experiment shares (and what a finished run must have been trained with)."""

    data: str
    data_dir: str | None
    recipe: str
    iterations: int
    overrides: tuple[str, ...] = ()  # recipe fields as KEY=VALUE, budget's first, then the user's --set
    device: str = "cpu"
    budget: str = ""  # name only, for the tables; what it means is in iterations and overrides

    def identity(self, plan: RunPlan) -> dict[str, Any]:
        # Device and data location may change between sessions (resume on another machine); these may not.
        return {"model": plan.model, "seed": plan.seed, "data": self.data, "recipe": self.recipe,
                "iterations": self.iterations, "overrides": list(self.overrides)}


class ExperimentInterrupted(ResNetError):
    """Ctrl-C / SIGTERM while training: the current run checkpointed; rerunning the command resumes it."""

    exit_code = 130


@dataclass
class RunOutcome:
    plan: RunPlan
    status: Status  # after this invocation
    skipped: bool = False  # already finished before
    error: str | None = None
    seconds: float = 0.0


def plan_runs(
    out: Path, depths: Sequence[int], *, plain: bool = True, residual: bool = True, runs: int = 1, seed: int = 0
) -> list[RunPlan]:
    """Plain and/or residual nets of each depth; run k > 1 of a net is ``<net>-run<k>`` with seed ``seed + k - 1``.

    Run 1 keeps the bare name, so a depth table and a degradation experiment pointed at the same
    ``--out`` share their ResNet runs.
    """
    if runs < 1:
        raise UsageError(f"--runs must be at least 1, got {runs}")
    kinds = [k for k, on in (("plain", plain), ("resnet", residual)) if on]
    plans = []
    for kind in kinds:
        for depth in depths:
            for k in range(1, runs + 1):
                model = f"{kind}{depth}"
                name = model if k == 1 else f"{model}-run{k}"
                plans.append(RunPlan(name, model, depth, kind == "resnet", seed + k - 1, out / "runs" / name))
    return plans


def read_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResNetError(f"{path} is unreadable ({err}); delete it to retrain {folder.name} from its checkpoint") from None
    return data if isinstance(data, dict) else None


def write_marker(plan: RunPlan, settings: TrainSettings, status: Status, **extra: Any) -> None:
    record = {"status": status, **settings.identity(plan), "device": settings.device, "data_dir": settings.data_dir,
              "budget": settings.budget, **extra}
    atomic_write_text(plan.folder / MARKER, json.dumps(record, indent=2) + "\n")


def run_status(plan: RunPlan, settings: TrainSettings) -> Status:
    """``done`` (finished under these settings), ``partial`` (has a checkpoint to resume) or ``new``.

    A folder trained under other settings (another budget, seed, recipe) is an error, not something
    to silently resume or mix into the figure, unless it holds nothing to lose (a run that failed
    before its first checkpoint): that one simply starts again under the new settings.
    """
    marker = read_marker(plan.folder)
    if marker is not None:
        wanted = settings.identity(plan)
        differs = {k: (marker.get(k), v) for k, v in wanted.items() if marker.get(k) != v}
        if differs and marker.get("status") != "done" and not has_checkpoint(plan.folder):
            return "new"
        if differs:
            what = "; ".join(f"{k}: folder {a!r} vs now {b!r}" for k, (a, b) in differs.items())
            raise UsageError(
                f"{plan.folder} was trained under other settings ({what}); use another --out, or delete that folder to retrain it"
            )
        if marker.get("status") == "done":
            return "done"
    return "partial" if has_checkpoint(plan.folder) else "new"


def has_checkpoint(folder: Path) -> bool:
    """Whether the trainer left a state to resume from (``last.state.pt``)."""
    return (folder / STATE).is_file()


# -- running ----------------------------------------------------------------------------------------
def execute(
    plans: Sequence[RunPlan], settings: TrainSettings, *, parallel: int = 1, progress: ProgressFn | None = None
) -> list[RunOutcome]:
    """Train every plan that is not finished yet; returns one outcome per plan (in order).

    A failing run does not stop the others; its outcome carries the error. Ctrl-C stops the
    training (the trainer, and every subprocess this function started, checkpoints first, so the
    next invocation resumes) and raises :class:`ExperimentInterrupted`.
    """
    say = progress or (lambda _m: None)
    if parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {parallel}")
    outcomes: dict[str, RunOutcome] = {}
    todo: list[tuple[RunPlan, bool]] = []
    for plan in plans:
        status = run_status(plan, settings)
        if status == "done":
            say(f"{plan.name}: finished earlier, kept")
            outcomes[plan.name] = RunOutcome(plan, "done", skipped=True)
        else:
            todo.append((plan, status == "partial"))
    try:
        if parallel == 1:
            for plan, resume in todo:
                outcomes[plan.name] = _run_here(plan, settings, resume, say)
        else:
            for outcome in _run_subprocesses(todo, settings, parallel, say):
                outcomes[outcome.plan.name] = outcome
    except KeyboardInterrupt:
        raise ExperimentInterrupted("interrupted; the unfinished runs kept their checkpoints: rerun the same command to resume") from None
    return [outcomes[p.name] for p in plans]


def _run_here(plan: RunPlan, settings: TrainSettings, resume: bool, say: ProgressFn) -> RunOutcome:
    say(f"{plan.name}: {'resuming' if resume else 'training'} ({settings.iterations} iterations, seed {plan.seed})")
    plan.folder.mkdir(parents=True, exist_ok=True)
    write_marker(plan, settings, "partial")
    start = time.monotonic()
    try:
        summary = train_in_process(plan, settings)
    except (UsageError, DataError):
        raise  # bad settings or data: every other run would fail the same way
    except ResNetError as err:
        if getattr(err, "exit_code", 1) == 130:  # the trainer checkpointed after Ctrl-C: stop everything
            raise KeyboardInterrupt from None
        say(f"{plan.name}: failed: {err}")  # e.g. diverged: the other networks still tell their story
        return RunOutcome(plan, run_status(plan, settings), error=str(err), seconds=time.monotonic() - start)
    if not summary.get("finished", True):
        reason = summary.get("stop_reason") or f"stopped at iteration {summary.get('steps')}"
        say(f"{plan.name}: not finished: {reason}")
        return RunOutcome(plan, run_status(plan, settings), error=str(reason), seconds=time.monotonic() - start)
    return _finished(plan, settings, summary, time.monotonic() - start, say)


def _finished(plan: RunPlan, settings: TrainSettings, summary: dict[str, Any], seconds: float, say: ProgressFn) -> RunOutcome:
    # The trainer's own total counts the sessions before a resume too.
    total = _finite(summary.get("seconds")) or seconds
    write_marker(plan, settings, "done", seconds=round(total, 1))
    say(f"{plan.name}: done in {seconds:.0f} s")
    return RunOutcome(plan, "done", seconds=seconds)


def _read_summary(folder: Path) -> dict[str, Any]:
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return summary if isinstance(summary, dict) else {}


def _child_env(parallel: int) -> dict[str, str]:
    env = dict(os.environ)
    # N trainings at once: share the cores instead of each claiming all of them.
    if "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    src = str(Path(__file__).resolve().parents[2])  # the folder holding the `resnet` package
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run_subprocesses(todo: list[tuple[RunPlan, bool]], settings: TrainSettings, parallel: int, say: ProgressFn) -> list[RunOutcome]:
    pending = list(todo)
    running: dict[str, tuple[subprocess.Popen[bytes], RunPlan, float, Any]] = {}
    done: list[RunOutcome] = []
    env = _child_env(parallel)
    # SIGTERM would end this process without unwinding, orphaning the trainings; make it unwind instead.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        while pending or running:
            while pending and len(running) < parallel:
                plan, resume = pending.pop(0)
                plan.folder.mkdir(parents=True, exist_ok=True)
                write_marker(plan, settings, "partial")
                cmd = train_command(plan, settings)
                log = open(plan.folder / "train.log", "ab")  # noqa: SIM115 - closed when the child ends
                log.write(f"\n$ {' '.join(cmd)}\n".encode())
                log.flush()
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                running[plan.name] = (proc, plan, time.monotonic(), log)
                say(f"{plan.name}: {'resuming' if resume else 'training'} in process {proc.pid} (log: {plan.folder / 'train.log'})")
            time.sleep(0.5)
            for name, (proc, plan, start, log) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                log.close()
                del running[name]
                seconds = time.monotonic() - start
                summary = _read_summary(plan.folder)
                if rc == 0 and summary.get("finished"):
                    done.append(_finished(plan, settings, summary, seconds, say))
                elif rc == 0:
                    reason = summary.get("stop_reason") or "the trainer exited before the last iteration"
                    say(f"{plan.name}: not finished: {reason}")
                    done.append(RunOutcome(plan, run_status(plan, settings), error=str(reason), seconds=seconds))
                else:
                    tail = _log_tail(plan.folder / "train.log")
                    say(f"{plan.name}: failed (exit {rc}): {tail}")
                    done.append(RunOutcome(plan, run_status(plan, settings), error=f"exit {rc}: {tail}", seconds=seconds))
    except BaseException as err:
        _stop_children([(proc, log) for proc, _, _, log in running.values()], from_terminal=isinstance(err, KeyboardInterrupt))
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return done


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _stop_children(children: list[tuple[subprocess.Popen[bytes], Any]], *, from_terminal: bool) -> None:
    """Let every child checkpoint and exit; kill only those that do not within a minute.

    A Ctrl-C at the terminal reaches the children too (same process group), and the trainer takes a
    *second* signal as "stop now, without a checkpoint", so they get time to act on the first one
    before SIGTERM is sent.
    """
    deadline = time.monotonic() + (30.0 if from_terminal else 0.0)
    while from_terminal and time.monotonic() < deadline and any(proc.poll() is None for proc, _ in children):
        time.sleep(0.2)
    for proc, _ in children:
        if proc.poll() is None:
            proc.terminate()
    for proc, log in children:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _log_tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"



# -- the trainer (docs/dev/trainer-contract.md) -------------------------------------------------------
def _override_pairs(overrides: Sequence[str]) -> dict[str, str]:
    """``["iterations=1300", "eval_every=130"]`` → dict; later entries win, as with repeated ``--set``."""
    pairs: dict[str, str] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r} (e.g. --set lr=0.05)")
        pairs[key.strip().replace("-", "_")] = value.strip()
    return pairs


def train_in_process(plan: RunPlan, settings: TrainSettings) -> dict[str, Any]:
    """Train (or resume) one run with :func:`resnet.train.train`; returns the trainer's summary.

    ``resume=True`` always: the trainer resumes from ``last.state.pt`` when there is one and starts
    fresh otherwise, which also covers a folder whose earlier attempt died before its first checkpoint.
    """
    try:
        from ..train import TrainOptions, train
    except ImportError as err:
        raise ResNetError(f"training needs the trainer (resnet.train), which this build lacks ({err})") from None
    opts = TrainOptions(
        model=plan.model, data=settings.data, data_dir=settings.data_dir, recipe=settings.recipe,
        overrides=_override_pairs(settings.overrides), out=plan.folder, seed=plan.seed, device=settings.device,
        resume=True, deterministic=False, progress=True,
    )
    summary = train(opts)
    return summary if isinstance(summary, dict) else {}


def train_command(plan: RunPlan, settings: TrainSettings) -> list[str]:
    """The ``resnet train`` command line that trains (or resumes) ``plan`` in a subprocess."""
    cmd = [sys.executable, "-m", "resnet", "train", plan.model, "--data", settings.data]
    if settings.data_dir is not None:
        cmd += ["--data-dir", settings.data_dir]
    cmd += ["--recipe", settings.recipe]
    for item in settings.overrides:
        cmd += ["--set", item]
    cmd += ["--out", str(plan.folder), "--seed", str(plan.seed), "--device", settings.device, "--resume"]
    return cmd


# -- budgets ----------------------------------------------------------------------------------------
# Reduced budget, from the measured CIFAR-10 training speed on the 2-core AVX2 CPU this project is
# developed on (benchmarks/train_throughput.py: ~310 img/s for ResNet-20 at batch 128, fp32; a CIFAR
# net's cost grows about linearly with depth, plain or residual). The 8 nets of depths 20/32/44/56 cost
# 2 * (20 + 32 + 44 + 56) / 20 = 15.2 ResNet-20s, so 90 minutes buy 5400 s * 310 / 128 / 15.2 ≈ 860
# iterations each; the evaluations that draw the test curves (hold-out and test set every tenth of the
# run, at ~3x the training speed) take about a fifth of that, leaving 700.
BUDGETS = ("paper", "reduced", "tiny")
REDUCED_ITERATIONS = 700
TINY_ITERATIONS = 24
EVALUATIONS_PER_RUN = 10  # points on each test-error curve (the paper's Fig. 6 curves are smooth; 10 show the shape)
# The recipe each data set trains with, and its full length (the `paper` budget changes nothing).
IMAGENET_DATA = ("imagenet",)
RECIPE_ITERATIONS = {"cifar-paper": 64_000, "imagenet-paper": 600_000}
PAPER_ITERATIONS = RECIPE_ITERATIONS["cifar-paper"]
# Data sets too small for the recipe's 5k hold-out: keep this many training images aside instead.
SMALL_DATA_HOLDOUT = {"digits": 150}
# Data sets whose experiment runs train on the whole training set, as the paper's CIFAR nets did.
PAPER_FULL_TRAIN_SET = ("cifar10", "cifar100")


def recipe_for(data: str) -> str:
    return "imagenet-paper" if data in IMAGENET_DATA else "cifar-paper"


def budget_iterations(budget: str, override: int | None = None, recipe: str = "cifar-paper") -> int:
    if override is not None:
        if override < 1:
            raise UsageError(f"--iterations must be positive, got {override}")
        return override
    if budget == "paper":
        return RECIPE_ITERATIONS[recipe]
    try:
        return {"reduced": REDUCED_ITERATIONS, "tiny": TINY_ITERATIONS}[budget]
    except KeyError:
        raise UsageError(f"unknown --budget {budget!r}; choose paper, reduced or tiny") from None


def budget_settings(
    budget: str,
    *,
    data: str,
    data_dir: str | None = None,
    iterations: int | None = None,
    device: str = "cpu",
    overrides: Sequence[str] = (),
) -> TrainSettings:
    """What every run of the experiment trains with.

    ``paper`` is the data set's recipe untouched. Any other length overrides only ``iterations``
    (the trainer then scales the lr milestones, so the schedule keeps its shape: ÷10 at 50 % and
    75 %) and ``eval_every`` (:data:`EVALUATIONS_PER_RUN` points per test curve). The user's
    ``--set`` items come last, so they win; the run length itself is set with ``--iterations`` only,
    since it is part of what identifies a finished run.
    """
    recipe = recipe_for(data)
    n = budget_iterations(budget, iterations, recipe)
    user = _override_pairs(overrides)
    if "iterations" in user:
        raise UsageError("give the run length with --iterations N (or --budget), not --set iterations=...")
    items: list[str] = []
    if n != RECIPE_ITERATIONS[recipe]:
        items += [f"iterations={n}", f"eval_every={max(1, n // EVALUATIONS_PER_RUN)}"]
    if data in SMALL_DATA_HOLDOUT and "holdout" not in user:
        items.append(f"holdout={SMALL_DATA_HOLDOUT[data]}")
    elif data in PAPER_FULL_TRAIN_SET and "holdout" not in user:
        # The paper fixed its CIFAR schedule on a 45k/5k split, then trained the reported nets on all
        # 50k images; that also spares a third of every evaluation (the curves need the test set only).
        items.append("holdout=0")
    items += [f"{k}={v}" for k, v in user.items()]
    settings = TrainSettings(data, data_dir, recipe, n, tuple(items), device, budget)
    _resolved_recipe(settings)  # a misspelt --set fails now, not after the first network has trained
    return settings


def _resolved_recipe(settings: TrainSettings) -> Any:
    """The trainer's resolved recipe for ``settings`` (None where this build has no trainer)."""
    try:
        from ..train.recipes import resolve_recipe
    except ImportError:
        return None
    return resolve_recipe(settings.recipe, _override_pairs(settings.overrides))


def describe_settings(settings: TrainSettings | None, budget: str | None = None) -> str:
    """One paragraph for the tables: recipe, length, schedule, evaluations, data, seed."""
    if settings is None:
        return f"No run folder recorded its settings (budget {budget or '?'} asked for)."
    recipe = None
    try:
        recipe = _resolved_recipe(settings)
    except ResNetError:
        pass
    schedule = ""
    if recipe is not None and getattr(recipe, "schedule", None) == "step" and getattr(recipe, "milestones", None):
        marks = " and ".join(f"{m:,}" for m in recipe.milestones)
        schedule = f" (SGD, batch {recipe.batch_size}, lr {recipe.lr:g} ÷{1 / recipe.gamma:g} at iterations {marks})"
    every = getattr(recipe, "evaluation_interval", None)
    evals = "" if every is None else f", evaluated every {'iteration' if every == 1 else f'{every:,} iterations'}"
    changed = ", ".join(f"`{o}`" for o in settings.overrides) or "none"
    where = f" from `{settings.data_dir}`" if settings.data_dir else ""
    name = f"budget `{settings.budget}`, " if settings.budget else ""
    return (
        f"Training: recipe `{settings.recipe}`{schedule}, {settings.iterations:,} iterations ({name}recipe overrides: "
        f"{changed}){evals}. Data: {settings.data}{where}. Every network trains from the same seed (the k-th repeat of a "
        f"network from seed + k - 1); device {settings.device}."
    )


def settings_from_markers(plans: Sequence[RunPlan]) -> TrainSettings | None:
    """The settings the existing run folders were trained with (``--plot-only``), None without any.

    Folders trained under different settings are refused: one figure shows one training setup.
    """
    found: list[tuple[RunPlan, dict[str, Any]]] = [(p, m) for p in plans if (m := read_marker(p.folder)) is not None]
    if not found:
        return None
    settings = []
    for plan, m in found:
        try:
            s = TrainSettings(
                data=str(m["data"]), data_dir=m.get("data_dir"), recipe=str(m["recipe"]), iterations=int(m["iterations"]),
                overrides=tuple(str(o) for o in m.get("overrides", [])), device=str(m.get("device", "cpu")),
                budget=str(m.get("budget", "")),
            )
        except (KeyError, TypeError, ValueError):
            raise ResNetError(f"{plan.folder / MARKER} lacks data/recipe/iterations; delete it and rerun that network") from None
        settings.append((plan, s))
    first_plan, first = settings[0]
    key = lambda s: (s.data, s.recipe, s.iterations, s.overrides)  # noqa: E731 - what makes runs comparable
    for plan, s in settings[1:]:
        if key(s) != key(first):
            raise UsageError(
                f"{first_plan.folder} and {plan.folder} were trained under different settings "
                f"({first.iterations} vs {s.iterations} iterations, overrides {list(first.overrides)} vs {list(s.overrides)}); "
                "plot them from separate --out folders"
            )
    return first


# -- reading runs back -----------------------------------------------------------------------------
def read_records(path: Path) -> list[dict[str, Any]]:
    """Complete JSON lines of a ``metrics.jsonl`` (a line cut short by a kill is skipped)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _points(records: Sequence[dict[str, Any]], key: str) -> list[list[float]]:
    return [[r["step"], v] for r in records if (v := _finite(r.get(key))) is not None]


def read_curves(plans: Sequence[RunPlan]) -> list[dict[str, Any]]:
    """Error curves of every planned run that has a training log, in plan order.

    Each curve: ``name``, ``model``, ``depth``, ``residual``, ``seed``, ``status`` (``done`` /
    ``partial``), ``iterations`` (asked for), ``steps`` (reached), ``train``, ``test`` and ``holdout``
    as ``[[iteration, error %], ...]``, and ``final_{train,test,holdout}_error`` from the last
    evaluation (training error = mean mini-batch error over the last evaluation interval).

    ``train`` is the trainer's training log (one point per logging interval, denser than the
    evaluations); a run shorter than one logging interval uses the evaluations' training windows.
    """
    curves = []
    for plan in plans:
        by_key: dict[tuple[str, int], dict[str, Any]] = {}
        for r in read_records(plan.folder / METRICS):
            by_key[(str(r.get("kind")), r["step"])] = r  # a record repeated by a resume counts once
        records = sorted(by_key.values(), key=lambda r: r["step"])
        train = [r for r in records if r.get("kind") == "train"]
        evals = [r for r in records if r.get("kind") == "eval"]
        if not train and not evals:
            continue
        train_points = _points(train, "error")
        if len(train_points) < len(evals):
            train_points = _points(evals, "train_error")
        last = evals[-1] if evals else {}
        marker = read_marker(plan.folder) or {}
        curves.append({
            "name": plan.name, "model": plan.model, "depth": plan.depth, "residual": plan.residual, "seed": plan.seed,
            "status": _status(plan.folder, marker),
            "iterations": marker.get("iterations") or _recipe_iterations(plan.folder),
            "steps": records[-1]["step"],
            "train": train_points, "test": _points(evals, "test_error"), "holdout": _points(evals, "holdout_error"),
            "final_train_error": _finite(last.get("train_error")), "final_test_error": _finite(last.get("test_error")),
            "final_holdout_error": _finite(last.get("holdout_error")),
            "seconds": _finite(marker.get("seconds")),
        })
    return curves


def _status(folder: Path, marker: dict[str, Any]) -> Status:
    if marker:
        return "done" if marker.get("status") == "done" else "partial"
    # A folder trained by hand with `resnet train` has no marker; its summary says whether it finished.
    try:
        return "done" if json.loads((folder / "summary.json").read_text()).get("finished") else "partial"
    except (OSError, json.JSONDecodeError, AttributeError):
        return "partial"


def _recipe_iterations(folder: Path) -> int | None:
    try:
        value = json.loads((folder / "recipe.json").read_text())["recipe"]["iterations"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None
