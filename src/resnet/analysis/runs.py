"""Training many networks for one experiment: plan, resume, run (one by one or N at once), read back.

Every network trains into ``OUT/runs/<name>/`` through the trainer (:mod:`resnet.train`). A small
``experiment.json`` in that folder records what the experiment asked for (budget, iterations, seed,
data) and whether the training finished, so that rerunning the experiment

- never redoes a finished run,
- resumes an unfinished one (the trainer's ``--resume``),
- refuses to mix a folder trained under other settings into the figure.

``--parallel N`` starts N ``resnet train`` subprocesses (each logging to its folder's ``train.log``);
with N = 1 the trainer runs in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from ..errors import ResNetError, UsageError
from ..utils.atomic import atomic_write_text

MARKER = "experiment.json"
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

    def identity(self, plan: RunPlan) -> dict[str, Any]:
        # Device and data location may change between sessions (resume on another machine); these may not.
        return {"model": plan.model, "seed": plan.seed, "data": self.data, "recipe": self.recipe,
                "iterations": self.iterations, "overrides": list(self.overrides)}


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
    record = {"status": status, **settings.identity(plan), "device": settings.device, **extra}
    atomic_write_text(plan.folder / MARKER, json.dumps(record, indent=2) + "\n")


def run_status(plan: RunPlan, settings: TrainSettings) -> Status:
    """``done`` (finished under these settings), ``partial`` (has a checkpoint to resume) or ``new``.

    A folder trained under other settings (another budget, seed, recipe) is an error, not something
    to silently resume or mix into the figure.
    """
    marker = read_marker(plan.folder)
    if marker is not None:
        wanted = settings.identity(plan)
        differs = {k: (marker.get(k), v) for k, v in wanted.items() if marker.get(k) != v}
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
    return (folder / "last.state.pt").is_file()


# -- running ----------------------------------------------------------------------------------------
def execute(
    plans: Sequence[RunPlan], settings: TrainSettings, *, parallel: int = 1, progress: ProgressFn | None = None
) -> list[RunOutcome]:
    """Train every plan that is not finished yet; returns one outcome per plan (in order).

    A failing run does not stop the others; its outcome carries the error. Ctrl-C stops the
    subprocesses this function started (they resume on the next invocation) and re-raises.
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
    if parallel == 1:
        for plan, resume in todo:
            outcomes[plan.name] = _run_here(plan, settings, resume, say)
    else:
        for outcome in _run_subprocesses(todo, settings, parallel, say):
            outcomes[outcome.plan.name] = outcome
    return [outcomes[p.name] for p in plans]


def _run_here(plan: RunPlan, settings: TrainSettings, resume: bool, say: ProgressFn) -> RunOutcome:
    say(f"{plan.name}: {'resuming' if resume else 'training'} ({settings.iterations} iterations, seed {plan.seed})")
    plan.folder.mkdir(parents=True, exist_ok=True)
    write_marker(plan, settings, "partial")
    start = time.monotonic()
    try:
        train_in_process(plan, settings, resume)
    except ResNetError as err:
        say(f"{plan.name}: failed: {err}")
        return RunOutcome(plan, run_status(plan, settings), error=str(err), seconds=time.monotonic() - start)
    write_marker(plan, settings, "done", seconds=round(time.monotonic() - start, 1))
    say(f"{plan.name}: done in {time.monotonic() - start:.0f} s")
    return RunOutcome(plan, "done", seconds=time.monotonic() - start)


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
    try:
        while pending or running:
            while pending and len(running) < parallel:
                plan, resume = pending.pop(0)
                plan.folder.mkdir(parents=True, exist_ok=True)
                write_marker(plan, settings, "partial")
                cmd = train_command(plan, settings, resume)
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
                if rc == 0:
                    write_marker(plan, settings, "done", seconds=round(seconds, 1))
                    say(f"{plan.name}: done in {seconds:.0f} s")
                    done.append(RunOutcome(plan, "done", seconds=seconds))
                else:
                    tail = _log_tail(plan.folder / "train.log")
                    say(f"{plan.name}: failed (exit {rc}): {tail}")
                    done.append(RunOutcome(plan, run_status(plan, settings), error=f"exit {rc}: {tail}", seconds=seconds))
    except BaseException:
        for proc, plan, _, log in running.values():
            proc.terminate()
        for proc, plan, _, log in running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        raise
    return done


def _log_tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"


# -- budgets ----------------------------------------------------------------------------------------
# Reduced budget, worked out from throughput measured on the 2-core CPU this project is developed on
# (DESIGN.md §5): ResNet-20 trains at ~600 img/s at batch 128 (bf16 autocast + channels_last), and a
# CIFAR net's cost grows ~linearly with depth, plain or residual. The 8 nets of depths 20/32/44/56 cost
# 2 * (20 + 32 + 44 + 56) / 20 = 15.2 ResNet-20s, so 90 minutes buy 5400 s * 600 / 128 / 15.2 ≈ 1665
# iterations each; a fifth of that goes to the test/hold-out evaluations that draw the curves
# (~25k images every tenth of the run at ~3x the training speed), leaving 1300.
REDUCED_ITERATIONS = 1300
TINY_ITERATIONS = 24
PAPER_ITERATIONS = 64_000
EVALUATIONS_PER_RUN = 10  # points on each test-error curve (the paper's Fig. 6 curves are smooth; 10 show the shape)


def budget_iterations(budget: str, override: int | None = None) -> int:
    if override is not None:
        if override < 1:
            raise UsageError(f"--iterations must be positive, got {override}")
        return override
    try:
        return {"paper": PAPER_ITERATIONS, "reduced": REDUCED_ITERATIONS, "tiny": TINY_ITERATIONS}[budget]
    except KeyError:
        raise UsageError(f"unknown --budget {budget!r}; choose paper, reduced or tiny") from None
