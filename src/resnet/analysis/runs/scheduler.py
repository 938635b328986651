"""Training an experiment's planned runs: each one not finished yet, in this process or as ``parallel``
subprocesses running :mod:`resnet.analysis.runs.worker` (each logging to its folder's ``train.log``), resuming
where a run stopped. Either way the trainer is called through :func:`train_in_process`."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ...errors import DataError, ResNetError, UsageError
from ...train.recipes import parse_overrides
from .curves import finite_value
from .folders import run_status, write_marker
from .plans import ProgressFn, RunPlan, Status, TrainSettings


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
        raise UsageError(f"`parallel` must be at least 1, got {parallel}")
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
    total = finite_value(summary.get("seconds")) or seconds
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
    src = str(Path(__file__).resolve().parents[3])  # the folder holding the `resnet` package
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
                log.write(f"\n$ {' '.join(cmd[:3])} {plan.name}\n".encode())
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
def train_in_process(plan: RunPlan, settings: TrainSettings) -> dict[str, Any]:
    """Train (or resume) one run with :func:`resnet.train.train`; returns the trainer's summary.

    ``resume=True`` always: the trainer resumes from ``last.state.pt`` when there is one and starts
    fresh otherwise, which also covers a folder whose earlier attempt died before its first checkpoint.
    """
    from ...train import TrainOptions, train  # at call time: the trainer's own module (tests put a fake there)

    opts = TrainOptions(
        model=plan.model, data=settings.data, data_dir=settings.data_dir, recipe=settings.recipe,
        overrides=parse_overrides(list(settings.overrides)), out=plan.folder, seed=plan.seed, device=settings.device,
        resume=True, deterministic=False, progress=True,
    )
    summary = train(opts)
    return summary if isinstance(summary, dict) else {}


WORKER = "resnet.analysis.runs.worker"  # the library entry point a subprocess runs


def train_command(plan: RunPlan, settings: TrainSettings) -> list[str]:
    """The process that trains (or resumes) ``plan``: this interpreter running :data:`WORKER` on the job."""
    return [sys.executable, "-m", WORKER, json.dumps(job_of(plan, settings))]


def job_of(plan: RunPlan, settings: TrainSettings) -> dict[str, Any]:
    """``plan`` and ``settings`` as JSON-able data (:func:`read_job` reads them back)."""
    return {"plan": {**dataclasses.asdict(plan), "folder": str(plan.folder)},
            "settings": {**dataclasses.asdict(settings), "overrides": list(settings.overrides)}}


def read_job(job: dict[str, Any]) -> tuple[RunPlan, TrainSettings]:
    try:
        plan = RunPlan(**{**job["plan"], "folder": Path(job["plan"]["folder"])})
        settings = TrainSettings(**{**job["settings"], "overrides": tuple(job["settings"]["overrides"])})
    except (KeyError, TypeError) as err:
        raise UsageError(f"not a run job ({err}); jobs are written by job_of") from None
    return plan, settings
