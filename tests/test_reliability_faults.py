"""Faults during training (issue 7): SIGKILL at any moment, a full disk, Ctrl-C. Nothing is lost.

The training processes are ``resnet train`` commands forked from a server that has imported torch
already (benchmarks/kill_training.py ``--mode fork``), so each starts in well under a second; the
benchmark script runs the same checks with many more kills of real ``python -m resnet train`` processes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from resnet.cli import main
from resnet.models.interop import model_from_checkpoint
from resnet.train.checkpoint import load_state

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kill_training as K  # noqa: E402

SHORT = K.Settings(iterations=10, eval_every=5, log_every=5)


@pytest.fixture(scope="module")
def launcher() -> Iterator[K.Launcher]:
    yield K.Launcher("fork", SHORT)
    with contextlib.suppress(Exception):  # the fork server holds a torch import: let it go
        import multiprocessing.forkserver

        multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]


# -- SIGKILL ----------------------------------------------------------------------------------------------
def test_sigkill_at_random_moments_and_inside_checkpoint_writes(launcher: K.Launcher, tmp_path: Path) -> None:
    report = K.run_trials(4, mode="fork", seed=1, workdir=tmp_path, settings=SHORT, write_share=0.6, kills_per_episode=4,
                          log=lambda *_: None)
    problems = [t.problem for t in report.trials if not t.ok] + [e["problem"] for e in report.episodes if not e["ok"]]
    assert report.ok, problems + [report.two_writers.get("problem")]
    assert report.kills >= 4 and report.kills_in_write >= 1, report.as_dict()
    assert sorted(code == 0 for code in report.two_writers["exit_codes"]) == [False, True]  # one of two writers refused


# -- disk full --------------------------------------------------------------------------------------------
@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Train in this process on one thread, like the forked runs (two threads on two busy cores crawl)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _disk_fills_on(monkeypatch: pytest.MonkeyPatch, target: str, after: int) -> dict[str, int]:
    """From the ``after``-th write on, ``target`` writes half its bytes and then fails with ENOSPC."""
    from resnet.models import interop
    from resnet.train import checkpoint
    from resnet.utils.atomic import atomic_path

    calls = {"n": 0}

    def half_then_full(path: Any, data: bytes) -> None:
        calls["n"] += 1
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data[: len(data) // 2] if calls["n"] > after else data)
            if calls["n"] > after:
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    module = {"state": checkpoint, "weights": interop}[target]
    monkeypatch.setattr(module, "atomic_write_bytes", half_then_full)
    return calls


@pytest.mark.parametrize("target", ["weights", "state"])
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    out = tmp_path / "run"
    argv = [str(a) for a in SHORT.argv(out)]
    # weights are written once per checkpoint and for best.safetensors: fail at the second checkpoint
    _disk_fills_on(monkeypatch, target, after=1 if target == "state" else 2)
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("resnet train: error: training stopped: no space left on device"), err
    assert "the last checkpoint" in lines[0] and "iteration 5, is intact" in lines[0] and "--resume" in lines[0]
    state = load_state(out)
    assert state is not None and state["step"] == 5  # the checkpoint before the full disk, readable
    _, meta = model_from_checkpoint(out / "last.safetensors")
    assert meta["step"] >= 5
    assert not list(out.glob(".*.tmp"))  # the half-written file was removed
    monkeypatch.undo()  # space freed: the same command plus --resume (in the settings) finishes the run
    assert main(argv) == 0
    assert load_state(out)["step"] == SHORT.iterations  # type: ignore[index]


def test_disk_full_while_appending_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          one_thread: None) -> None:
    from resnet.train.metrics import MetricsLog

    real_write = MetricsLog.write
    count = {"n": 0}

    def write(self: MetricsLog, record: dict[str, Any]) -> None:
        count["n"] += 1
        if count["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, record)

    monkeypatch.setattr(MetricsLog, "write", write)
    out = tmp_path / "run"
    rc = main([str(a) for a in SHORT.argv(out)])
    _, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    assert "no space left on device" in err and "iteration 5, is intact" in err, err


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1.45 MB filesystem (tmpfs): room for one checkpoint of resnet8 and not for the next."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1450k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()[:80]}); the injected ENOSPC tests stand in")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_disk_full_on_a_real_small_filesystem(small_disk: Path, capsys: pytest.CaptureFixture[str], one_thread: None) -> None:
    import subprocess

    out = small_disk / "run"
    argv = [str(a) for a in SHORT.argv(out)]
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err, err
    assert "no space left on device" in err and "iteration 5, is intact" in err and "--resume" in err, err
    assert load_state(out)["step"] == 5  # type: ignore[index]
    assert not list(out.glob(".*.tmp"))
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)  # space freed
    assert main(argv) == 0
    assert load_state(out)["step"] == SHORT.iterations  # type: ignore[index]


# -- Ctrl-C -----------------------------------------------------------------------------------------------
def _wait_for(predicate: Any, proc: Any, launcher: K.Launcher, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert launcher.running(proc), launcher.output(proc)
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.0005)


LONG = K.Settings(iterations=100_000, eval_every=5, log_every=5)


@pytest.mark.parametrize("moment", ["training", "checkpoint-write", "twice", "sigterm"])
def test_ctrl_c_checkpoints_and_says_how_to_resume(moment: str, launcher: K.Launcher, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = launcher.start(out, argv=LONG.argv(out))
    if moment == "checkpoint-write":
        _wait_for(lambda: bool(K._temporaries(out)), proc, launcher)
    else:
        _wait_for(lambda: (out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").stat().st_size > 0, proc, launcher)
    sig = signal.SIGTERM if moment == "sigterm" else signal.SIGINT
    os.kill(proc.pid, sig)
    if moment == "twice":
        time.sleep(0.001)
        os.kill(proc.pid, signal.SIGINT)  # a second Ctrl-C stops at once, mid-whatever
    rc = launcher.wait(proc, 120)
    output = launcher.output(proc)
    assert "Traceback" not in output, output
    assert rc == 130, output
    last = [line for line in output.splitlines() if line.strip()][-1]
    if moment == "twice" and last == "resnet train: interrupted":
        pass  # stopped at once: whatever checkpoint existed is intact (checked below)
    else:
        name = "SIGTERM" if moment == "sigterm" else "SIGINT"
        assert last.startswith(f"resnet train: error: interrupted by {name} at iteration"), output
        assert "checkpoint written to" in last and "continue with the same command plus --resume" in last
    assert not K._temporaries(out)
    state = load_state(out)
    if moment != "twice":
        assert state is not None and state["step"] >= 1
        _, meta = model_from_checkpoint(out / "last.safetensors")
        assert meta["step"] == state["step"]
