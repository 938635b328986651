"""One writer per run folder (a lock that dies with its process), and run folders that agree with their summary."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resnet.cli import main
from resnet.errors import CheckpointError
from resnet.inference import load_network
from resnet.train import TrainOptions, train
from resnet.utils.runlock import LOCK_FILE, RunFolderBusy, check_run_folder, file_sha256, run_lock

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = {"iterations": "16", "eval_every": "8", "log_every": "8", "batch_size": "32", "holdout": "100"}
HOLDER = textwrap.dedent("""
    import sys, time
    from resnet.utils.runlock import run_lock
    with run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
""")


def _opts(out: Path, **kw: object) -> TrainOptions:
    base = dict(model="resnet8", data="digits", overrides=dict(TINY), out=out, progress=False, tensorboard=False)
    base.update(kw)
    return TrainOptions(**base)  # type: ignore[arg-type]


def _hold(folder: Path) -> subprocess.Popen[str]:
    """Another process that holds ``folder``'s lock until killed."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_fails_at_once_naming_the_holder_and_a_killed_holders_lock_is_taken_over(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    holder = _hold(out)
    try:
        with pytest.raises(RunFolderBusy, match=rf"{out} is being written by another training run, pid {holder.pid} on "
                                                rf"{socket.gethostname()}"):
            train(_opts(out))
        assert not (out / "metrics.jsonl").exists() and not (out / "summary.json").exists()
        code = main(["train", "--model", "resnet8", "--data", "digits", "--out", str(out), "--no-progress",
                     "--no-tensorboard", "--set", "iterations=16"])
        err = capsys.readouterr().err.strip()
        assert code != 0 and len(err.splitlines()) == 1 and f"pid {holder.pid}" in err and "--out" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid  # a crash leaves the file, not the lock
    summary = train(_opts(out))
    assert summary["finished"]
    err = capsys.readouterr().err
    assert f"took over the stale lock {out / LOCK_FILE} of pid {holder.pid}" in err and "no longer running" in err
    assert not (out / LOCK_FILE).exists()  # a clean end removes it


def test_the_lock_is_exclusive_within_a_process_too_and_released_after_an_error(tmp_path: Path) -> None:
    with run_lock(tmp_path, say=pytest.fail):
        with pytest.raises(RunFolderBusy, match=f"pid {os.getpid()}"):
            with run_lock(tmp_path):
                pass
    with pytest.raises(ZeroDivisionError):
        with run_lock(tmp_path, say=pytest.fail):
            1 / 0
    with run_lock(tmp_path, say=pytest.fail):  # free again, and no stale holder left to report
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_stale_lock_file_of_a_dead_process_is_taken_over_with_a_line(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "then"}))
    said: list[str] = []
    with run_lock(tmp_path, say=said.append):
        pass
    assert len(said) == 1 and f"pid {dead.pid}" in said[0] and "no longer running" in said[0]


def test_summary_records_digests_and_a_mixed_folder_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    summary = train(_opts(out))
    files = json.loads((out / "summary.json").read_text())["files"]
    assert summary["files"] == files
    assert files == {name: file_sha256(out / name) for name in ("best.safetensors", "last.safetensors")}
    load_network(str(out))  # an intact folder loads

    other = tmp_path / "other"  # a second run (another seed, longer) whose weights land in the first folder
    train(_opts(other, seed=1, overrides={**TINY, "iterations": "24", "eval_every": "24", "holdout": "0"}))
    shutil.copyfile(other / "last.safetensors", out / "best.safetensors")
    best = summary["best"]["step"]
    with pytest.raises(CheckpointError, match=f"step 24, .*summary.json says step {best}: the folder holds files of two"):
        load_network(str(out))
    for command in (["eval", str(out), "--data", "digits"], ["predict", str(out), str(tmp_path)]):
        assert main(command) != 0, command
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "best.safetensors is from step 24" in err, err


def test_a_same_step_file_with_another_digest_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_opts(out))
    summary = json.loads((out / "summary.json").read_text())
    summary["files"]["best.safetensors"] = "0" * 64
    (out / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(CheckpointError, match="does not have the sha256 0000000000000000... that .*summary.json records"):
        check_run_folder(out, out / "best.safetensors", summary["best"]["step"])
    with pytest.raises(CheckpointError, match="sha256"):
        load_network(str(out))


def test_a_folder_being_trained_is_not_held_to_its_earlier_summary(tmp_path: Path) -> None:
    from resnet.models import create_model
    from resnet.models.interop import save_weights

    out = tmp_path / "run"
    out.mkdir()
    save_weights(create_model("resnet8"), out / "best.safetensors", {"step": 40})
    (out / "summary.json").write_text(json.dumps({"steps": 30, "best": {"step": 30}}))  # a resumed run's old summary
    with pytest.raises(CheckpointError, match="is from step 40, .* says step 30"):
        check_run_folder(out, out / "best.safetensors", 40)
    holder = _hold(out)  # while the run goes on, its summary is not yet rewritten: no refusal
    try:
        check_run_folder(out, out / "best.safetensors", 40)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with pytest.raises(CheckpointError, match="is from step 40"):  # its holder gone, the folder is checked again
        check_run_folder(out, out / "best.safetensors", 40)
