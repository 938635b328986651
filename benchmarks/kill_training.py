"""Kill a training run with SIGKILL at random moments and check that nothing is ever lost.

A digits run (``resnet train --model resnet8 --data digits --deterministic --device cpu``) is started,
killed, and started again with ``--resume``, over and over. Some kills land at random moments (during
start-up, training, evaluation), others the instant a checkpoint file is being written (a ``.*.tmp``
file of :mod:`resnet.utils.atomic` appears in the run folder). After every kill the run folder must hold
a loadable checkpoint (``last.state.pt`` through the trainer's own loader, ``last.safetensors`` and
``best.safetensors`` through :func:`resnet.models.interop.model_from_checkpoint`), never an older one
than before the kill. Each episode is then resumed to the end and its final weights must be bit for bit
those of an uninterrupted run, and its ``metrics.jsonl`` the same records (no step lost or doubled).
First, two trainings (seeds 0 and 1) start into one folder at once: one must be refused at once, in one line
naming the holder of the folder's lock, and the folder must hold the other run only, agreeing with its summary.

    python benchmarks/kill_training.py                 # 24 kills of the real `resnet train` command
    python benchmarks/kill_training.py --mode fork     # same with processes forked from a warm server (faster)
    python benchmarks/kill_training.py --kills 60 --seed 3 --json kills.json

``--mode cli`` runs ``python -m resnet train`` as a child process (each start pays for importing torch);
``--mode fork`` forks the training process from a server that has imported ``resnet`` already, so many
more kills fit in a minute (tests/test_reliability_faults.py uses it). Exit status 0 when every check
passed, 1 otherwise; ``--json`` writes every trial.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    """A short digits run with many checkpoints (one per evaluation) and a holdout (so best.safetensors too)."""

    model: str = "resnet8"
    iterations: int = 60
    eval_every: int = 10
    log_every: int = 5
    batch_size: int = 32
    holdout: int = 100
    seed: int = 0

    def overrides(self) -> dict[str, str]:
        return {"iterations": str(self.iterations), "eval_every": str(self.eval_every), "log_every": str(self.log_every),
                "batch_size": str(self.batch_size), "holdout": str(self.holdout)}

    def argv(self, out: Path) -> list[str]:
        args = ["train", "--model", self.model, "--data", "digits", "--out", str(out), "--seed", str(self.seed),
                "--device", "cpu", "--deterministic", "--resume", "--no-progress", "--no-tensorboard"]
        for key, value in self.overrides().items():
            args += ["--set", f"{key}={value}"]
        return args


@dataclass
class Trial:
    episode: int
    strategy: str  # "write": as a checkpoint file is being written; "start-up"; "past iteration N" of training
    seconds: float  # from the start of the process to the kill
    killed: bool  # False: the process had finished before the kill came
    in_write: bool  # a half-written temporary file was left behind: the kill landed inside a checkpoint write
    state_step: int | None  # iteration of last.state.pt after the kill (None: no checkpoint yet)
    weights_step: int | None
    ok: bool
    problem: str = ""


@dataclass
class Report:
    mode: str
    settings: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    two_writers: dict[str, Any] = field(default_factory=dict)  # two trainings started into one folder at once

    @property
    def kills(self) -> int:
        return sum(t.killed for t in self.trials)

    @property
    def kills_in_write(self) -> int:
        return sum(t.in_write for t in self.trials)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.trials) and all(e["ok"] for e in self.episodes) and bool(self.episodes) \
            and self.two_writers.get("ok", False)

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "settings": self.settings, "kills": self.kills, "kills_in_checkpoint_write": self.kills_in_write,
                "ok": self.ok, "seconds": round(self.seconds, 1), "two_writers": self.two_writers, "episodes": self.episodes, "trials": [asdict(t) for t in self.trials]}


# -- starting training processes --------------------------------------------------------------------------
def _cli_child(argv: list[str], log: str | None) -> None:
    """Body of a forked process (``--mode fork``): ``resnet ARGV`` exactly as the command runs it."""
    if log is not None:  # the command's stdout and stderr go to a file the caller reads afterwards
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    import torch

    from resnet.cli import main

    torch.set_num_threads(1)  # as OMP_NUM_THREADS=1 in cli mode: the same arithmetic in every process
    sys.exit(main(argv))


def _noop() -> None:
    pass


class Launcher:
    """Starts training processes, as `python -m resnet train` children or forked from a warm server."""

    def __init__(self, mode: str, settings: Settings) -> None:
        self.mode, self.settings = mode, settings
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                    "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        self.ctx = None
        if mode == "fork":
            # The server imports once what every training process needs (torch, scikit-learn for the
            # digits, matplotlib for the curves, torch._inductor that --deterministic imports); each fork then
            # starts in a fraction of a second.
            os.environ.setdefault("MPLBACKEND", "Agg")
            self.ctx = multiprocessing.get_context("forkserver")
            self.ctx.set_forkserver_preload(["torch", "torch._inductor", "resnet.train", "sklearn.datasets", "sklearn.model_selection",
                                             "matplotlib.pyplot"])
            warm = self.ctx.Process(target=_noop)  # start the server now, not inside the first timed run
            warm.start()
            warm.join()

    def start(self, out: Path, argv: list[str] | None = None, log: Path | None = None) -> Any:
        """Start ``resnet ARGV`` (default: the settings' training command into ``out``), output into ``log``."""
        argv = argv if argv is not None else self.settings.argv(out)
        log = log if log is not None else out.parent / f".{out.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if self.ctx is not None:
            proc = self.ctx.Process(target=_cli_child, args=(argv, str(log)))
            proc.start()
        else:
            with open(log, "wb") as fh:
                proc = subprocess.Popen([sys.executable, "-m", "resnet", *argv], env=self.env, stdout=fh, stderr=fh)
        proc.log = log  # type: ignore[union-attr]
        return proc

    @staticmethod
    def running(proc: Any) -> bool:
        return proc.is_alive() if isinstance(proc, multiprocessing.process.BaseProcess) else proc.poll() is None

    @staticmethod
    def kill(proc: Any) -> None:
        os.kill(proc.pid, signal.SIGKILL)

    @staticmethod
    def wait(proc: Any, timeout: float) -> int:
        if isinstance(proc, multiprocessing.process.BaseProcess):
            proc.join(timeout)
            if proc.exitcode is None:
                raise TimeoutError("training did not finish in time")
            return proc.exitcode
        proc.wait(timeout=timeout)
        return proc.returncode

    @staticmethod
    def output(proc: Any) -> str:
        """What the process printed (stdout and stderr)."""
        try:
            return Path(proc.log).read_text(errors="replace")
        except OSError:
            return ""

    def errors(self, proc: Any) -> str:
        return self.output(proc)[-2000:]


CHECKPOINT_FILES = ("last.state.pt", "last.safetensors", "best.safetensors")


def _temporaries(folder: Path) -> list[str]:
    """Half-written checkpoint files (``.last.state.pt.XXXX.tmp``, ...) in ``folder``."""
    try:
        names = [e.name for e in os.scandir(folder)]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.endswith(".tmp") and any(n.startswith(f".{c}.") for c in CHECKPOINT_FILES))


def _logged_step(folder: Path, since_ns: int) -> int:
    """The last iteration in metrics.jsonl, counting only a file the current process has written to."""
    path = folder / "metrics.jsonl"
    try:
        if path.stat().st_mtime_ns < since_ns:  # left by the killed process, about to be cut back
            return -1
        lines = path.read_bytes().splitlines()
    except OSError:
        return -1
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return -1


def _kill_at(launcher: Launcher, proc: Any, strategy: str, rng: random.Random, folder: Path, horizon: float,
             stale: list[str], settings: Settings) -> tuple[bool, float, str]:
    """Kill ``proc`` per ``strategy``; (whether it was still running, seconds since its start, where aimed)."""
    start = time.monotonic()
    aim = strategy
    if strategy == "write":
        writes_to_skip = rng.randint(0, 4)  # which checkpoint file write to hit: spreads the kills over the run
        seen: set[str] = set(stale)  # left by the previous kill; the trainer deletes them as it starts
        while launcher.running(proc) and time.monotonic() - start < horizon * 3:
            tmps = _temporaries(folder)
            new = [t for t in tmps if t not in seen]
            if new:
                seen.update(new)
                if len(seen) - len(stale) > writes_to_skip:
                    if rng.random() < 0.5:
                        time.sleep(rng.uniform(0, 0.003))  # somewhere inside the write, not only its first byte
                    break
            time.sleep(0.0002)
    elif rng.random() < 0.25:  # during start-up: imports, data, model, reading the checkpoint
        aim = "start-up"
        deadline = start + rng.uniform(0.0, min(horizon, 3.0))
        while launcher.running(proc) and time.monotonic() < deadline:
            time.sleep(0.002)
    else:  # at a random point of training or evaluation, whatever the speed of the machine
        target = rng.randint(1, settings.iterations - 1)
        aim = f"past iteration {target}"
        launched = time.time_ns()
        while launcher.running(proc) and _logged_step(folder, launched) < target:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.3))
    alive = launcher.running(proc)
    if alive:
        launcher.kill(proc)
    seconds = time.monotonic() - start
    launcher.wait(proc, 60)
    return alive, seconds, aim


def check_folder(folder: Path, previous_step: int | None) -> tuple[int | None, int | None, str]:
    """(state step, weights step, problem) of a run folder right after a kill; problem is '' when all is well."""
    from resnet.errors import ResNetError
    from resnet.models.interop import model_from_checkpoint
    from resnet.train.checkpoint import BEST_WEIGHTS, LAST_WEIGHTS, load_state

    try:
        state = load_state(folder)
    except ResNetError as err:
        return None, None, f"last.state.pt unreadable: {err}"
    state_step = int(state["step"]) if state is not None else None
    if previous_step is not None and (state_step is None or state_step < previous_step):
        return state_step, None, f"checkpoint went back from iteration {previous_step} to {state_step}"
    weights_step = None
    for name in (LAST_WEIGHTS, BEST_WEIGHTS):
        path = folder / name
        if not path.exists():
            if name == LAST_WEIGHTS and state is not None:
                return state_step, None, f"{name} missing beside last.state.pt"
            continue
        try:
            _, meta = model_from_checkpoint(path)
        except ResNetError as err:
            return state_step, None, f"{name} unreadable: {err}"
        if name == LAST_WEIGHTS:
            # Weights are written before the state, so they are never older than it.
            weights_step = int(meta.get("step", -1))
            if state_step is not None and weights_step < state_step:
                return state_step, weights_step, f"{name} (iteration {weights_step}) is older than last.state.pt ({state_step})"
    return state_step, weights_step, ""


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "last.safetensors"))


def _records(folder: Path) -> list[dict[str, Any]]:
    from resnet.train.metrics import TIMING_FIELDS, read_metrics

    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in read_metrics(folder / "metrics.jsonl")]


def compare_runs(run: Path, reference: Path) -> str:
    """'' when ``run`` ended with exactly the reference's weights and metrics, else what differs."""
    import torch

    summary = json.loads((run / "summary.json").read_text())
    if not summary.get("finished"):
        return "the resumed run did not finish"
    ours, theirs = _weights(run), _weights(reference)
    if sorted(ours) != sorted(theirs):
        return "the final weights have other tensors than the uninterrupted run's"
    differ = [k for k in theirs if not torch.equal(ours[k], theirs[k])]
    if differ:
        return f"{len(differ)} tensor(s) differ from the uninterrupted run, e.g. {differ[0]}"
    mine, ref = _records(run), _records(reference)
    if mine != ref:
        steps = [(r["kind"], r["step"]) for r in mine]
        doubled = len(steps) != len(set(steps))
        return f"metrics.jsonl differs from the uninterrupted run ({len(mine)} vs {len(ref)} records{', some doubled' if doubled else ''})"
    return ""


def two_writers(launcher: Launcher, root: Path, settings: Settings) -> dict[str, Any]:
    """Start two trainings (seeds 0 and 1) into one folder at once: exactly one must run, the other fail at once in
    one line naming the holder, and the folder must hold one run that agrees with its summary."""
    from resnet.errors import ResNetError
    from resnet.inference import load_network

    folder = root / "two-writers"
    shutil.rmtree(folder, ignore_errors=True)
    procs = [launcher.start(folder, Settings(**{**asdict(settings), "seed": seed}).argv(folder), root / f".writer{seed}.log")
             for seed in (0, 1)]
    codes = [launcher.wait(proc, 1800) for proc in procs]
    outputs = [launcher.output(proc).strip() for proc in procs]
    problem = ""
    if sorted(code == 0 for code in codes) != [False, True]:
        problem = f"exit statuses {codes}: expected one run to succeed and one to be refused"
    else:
        loser = outputs[codes.index(next(c for c in codes if c != 0))]
        if len(loser.splitlines()) != 1 or "being written by another training run, pid" not in loser:
            problem = f"the refused writer did not say so in one line naming the holder: {loser[-300:]!r}"
        evals = [r for r in _records(folder) if r["kind"] == "eval"]
        if not problem and len(evals) != settings.iterations // settings.eval_every:
            problem = f"metrics.jsonl holds {len(evals)} evaluation records, expected {settings.iterations // settings.eval_every}"
        try:
            load_network(str(folder))
        except ResNetError as err:
            problem = problem or f"the folder disagrees with its summary: {err}"
    return {"exit_codes": codes, "ok": not problem, "problem": problem}


def run_trials(kills: int, *, mode: str = "cli", seed: int = 0, workdir: Path | None = None, settings: Settings = Settings(),
               write_share: float = 0.5, kills_per_episode: int = 6, log: Any = print) -> Report:
    """Kill ``kills`` training processes (about ``write_share`` of them inside a checkpoint write)."""
    started = time.monotonic()
    rng = random.Random(seed)
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="kill-training-"))
    report = Report(mode, asdict(settings))
    launcher = Launcher(mode, settings)

    reference = root / "reference"
    shutil.rmtree(reference, ignore_errors=True)
    t0 = time.monotonic()
    proc = launcher.start(reference)
    rc = launcher.wait(proc, 1800)
    horizon = time.monotonic() - t0  # start-up plus the whole run: random kills fall anywhere in it
    if rc != 0:
        raise RuntimeError(f"the uninterrupted reference run failed (exit {rc}): {launcher.errors(proc)}")
    log(f"reference run: {horizon:.1f} s ({mode} mode)")
    report.two_writers = two_writers(launcher, root, settings)
    log(f"two writers into one folder: exits {report.two_writers['exit_codes']}, "
        f"{'one refused at once, one run in the folder' if report.two_writers['ok'] else 'PROBLEM: ' + report.two_writers['problem']}")

    episode = 0
    while report.kills < kills:
        episode += 1
        folder = root / f"episode{episode}"
        shutil.rmtree(folder, ignore_errors=True)
        previous: int | None = None
        in_episode = 0
        while in_episode < kills_per_episode and report.kills < kills:
            strategy = "write" if rng.random() < write_share else "random"
            stale = _temporaries(folder)
            proc = launcher.start(folder)
            alive, seconds, aim = _kill_at(launcher, proc, strategy, rng, folder, horizon, stale, settings)
            in_write = alive and bool(set(_temporaries(folder)) - set(stale))
            state_step, weights_step, problem = check_folder(folder, previous)
            trial = Trial(episode, aim, round(seconds, 3), alive, in_write, state_step, weights_step, not problem, problem)
            report.trials.append(trial)
            log(f"episode {episode} kill {len(report.trials):3d} ({aim:18s} at {seconds:6.2f} s): "
                f"{'killed' if alive else 'had finished'}{' inside a checkpoint write' if in_write else ''}, "
                f"checkpoint at iteration {state_step}{'' if not problem else ' -- PROBLEM: ' + problem}")
            previous = state_step if state_step is not None else previous
            in_episode += alive
            if not alive or state_step == settings.iterations:
                break  # the run is complete: nothing left to kill in this episode
        proc = launcher.start(folder)  # resume to the end
        rc = launcher.wait(proc, 1800)
        problem = f"resuming to the end failed (exit {rc}): {launcher.errors(proc)}" if rc != 0 else compare_runs(folder, reference)
        report.episodes.append({"episode": episode, "kills": in_episode, "ok": not problem, "problem": problem})
        log(f"episode {episode}: resumed to the end, {'identical to the uninterrupted run' if not problem else 'PROBLEM: ' + problem}")
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=24, help="SIGKILLs to deliver (default 24)")
    parser.add_argument("--mode", choices=("cli", "fork"), default="cli", help="how training processes start (default cli)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments (default 0)")
    parser.add_argument("--iterations", type=int, default=Settings.iterations, help="length of each run (default 60)")
    parser.add_argument("--write-share", type=float, default=0.5, help="share of kills aimed at checkpoint writes (default 0.5)")
    parser.add_argument("--workdir", type=Path, help="where the run folders go (default: a new temporary folder)")
    parser.add_argument("--json", type=Path, help="write every trial to this file")
    args = parser.parse_args(argv)
    settings = Settings(iterations=args.iterations)
    report = run_trials(args.kills, mode=args.mode, seed=args.seed, workdir=args.workdir, settings=settings,
                        write_share=args.write_share)
    summary = (f"{report.kills} kills ({report.kills_in_write} inside a checkpoint write) in {len(report.episodes)} episodes, "
               f"{report.seconds:.0f} s: {'every check passed' if report.ok else 'FAILED'}")
    print(summary)
    if args.json:
        args.json.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
