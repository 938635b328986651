"""The trainer end to end on the embedded digits: files, resume exactness, divergence, interruption, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from resnet.cli import main
from resnet.errors import UsageError
from resnet.train import TrainingDiverged, TrainOptions, train
from resnet.train.checkpoint import load_state

SRC = str(Path(__file__).resolve().parents[1] / "src")
# resnet8 (n=1) keeps each run to a few seconds on two cores.
TINY = {"iterations": "24", "eval_every": "8", "log_every": "4", "batch_size": "32", "holdout": "100"}


def _opts(out: Path, **kw: object) -> TrainOptions:
    base = dict(model="resnet8", data="digits", overrides=dict(TINY), out=out, progress=False, tensorboard=False)
    base.update(kw)
    return TrainOptions(**base)  # type: ignore[arg-type]


def _weights(folder: Path, name: str = "last.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(folder / name))


def test_a_run_writes_every_promised_file(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = train(_opts(out, tensorboard=True))
    for name in ("recipe.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "last.state.pt",
                 "summary.json", "curves.png", "results.md"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    assert summary["finished"] and summary["steps"] == 24
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [8, 16, 24]
    assert [r["step"] for r in records if r["kind"] == "train"] == [4, 8, 12, 16, 20, 24]
    last_eval = [r for r in records if r["kind"] == "eval"][-1]
    assert summary["final"]["test_error"] == last_eval["test_error"]
    assert summary["best"]["holdout_error"] == min(r["holdout_error"] for r in records if r["kind"] == "eval")
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["recipe"]["name"] == "digits" and recipe["recipe"]["iterations"] == 24
    state = torch.load(out / "last.state.pt", weights_only=True)
    assert state["step"] == 24


def test_resumed_run_ends_with_exactly_the_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    parts = tmp_path / "parts"
    train(_opts(whole))
    first = train(_opts(parts, stop_after=11))  # between two checkpoints: the resume starts mid-epoch
    assert not first["finished"] and first["steps"] == 11
    second = train(_opts(parts, resume=True))
    assert second["finished"] and second["steps"] == 24
    a, b = _weights(whole), _weights(parts)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    sa, sb = torch.load(whole / "last.state.pt", weights_only=True), torch.load(parts / "last.state.pt", weights_only=True)
    for (ka, va), (kb, vb) in zip(sa["optimizer"]["state"].items(), sb["optimizer"]["state"].items()):
        assert torch.equal(va["momentum_buffer"], vb["momentum_buffer"])
    # The metrics of the redone part are not duplicated: same records, same steps, as the whole run.
    def steps(folder: Path) -> list[tuple[str, int]]:
        return [(r["kind"], r["step"]) for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())]

    assert steps(parts) == steps(whole)


def test_ema_and_test_flip_resume_exactly_too(tmp_path: Path) -> None:
    extra = {"ema_decay": "0.9", "test_flip": "true", "label_smoothing": "0.1"}
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(_opts(whole, overrides={**TINY, **extra}))
    train(_opts(parts, overrides={**TINY, **extra}, stop_after=13))
    train(_opts(parts, overrides={**TINY, **extra}, resume=True))
    a, b = _weights(whole), _weights(parts)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings_and_overwrite_is_explicit(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_opts(out, stop_after=4))
    with pytest.raises(UsageError, match="lr: 0.1 then, 0.2 now"):
        train(_opts(out, overrides={**TINY, "lr": "0.2"}, resume=True))
    with pytest.raises(UsageError, match="`resume` to continue it, `overwrite`"):
        train(_opts(out))
    assert train(_opts(out, overwrite=True, stop_after=2))["steps"] == 2


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resnet.train.schedule import LRSchedule

    normal = LRSchedule.lr
    # The rate explodes after the checkpoint of iteration 8, as a too-high rate would.
    monkeypatch.setattr(LRSchedule, "lr", lambda self, step: 1e30 if step >= 10 else normal(self, step))
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"became (nan|inf) at iteration 1\d \(lr 1e\+30\): the learning rate is "
                       r"probably too high.*last good checkpoint is .*last.state.pt"):
        train(_opts(out))
    state = load_state(out)
    assert state is not None and state["step"] == 8
    for path in out.glob("*.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(str(path)).values())
    monkeypatch.setattr(LRSchedule, "lr", normal)
    assert train(_opts(out, resume=True))["finished"]  # and the run goes on from the good checkpoint


def test_eval_of_a_run_folder_matches_the_trainers_test_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    # fp32 so that the trainer's evaluation and `resnet eval` compute the same thing
    summary = train(_opts(out, overrides={**TINY, "holdout": "0", "precision": "fp32"}))
    assert summary["best"] is None and not (out / "best.safetensors").exists()
    assert main(["eval", str(out), "--data", "digits", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["members"][0]["top1_err"] == pytest.approx(summary["final"]["test_error"], abs=1e-4)


def test_trainer_shift_views_match_the_shift_protocol_of_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The trainer shifts normalised tensors (filling with a normalised black pixel), `resnet eval`
    # shifts uint8 images (filling with 0) and then normalises: the two must score the same 6 views.
    out = tmp_path / "run"
    overrides = {**TINY, "holdout": "0", "precision": "fp32", "test_flip": "true", "test_shift": "2"}
    summary = train(_opts(out, overrides=overrides))
    assert main(["eval", str(out), "--data", "digits", "--protocol", "shift", "--shift", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["members"][0]["top1_err"] == pytest.approx(summary["final"]["test_error"], abs=1e-4)
    assert main(["eval", str(out), "--data", "digits", "--shift", "2"]) == 2  # --shift without --protocol shift


def test_cli_train_with_no_arguments_but_data_digits(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run(
        [sys.executable, "-m", "resnet", "train", "--data", "digits", "--out", str(tmp_path / "d"),
         "--set", "iterations=6", "--set", "log_every=3"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "resnet20 on digits" in proc.stdout and "final test accuracy" in proc.stdout


def test_cli_bad_options_are_one_line_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for argv, needle in (
        (["train", "--data", "digits", "--recipe", "nope"], "unknown recipe"),
        (["train", "--data", "digits", "--set", "batch_size=-3", "--out", str(tmp_path / "x")], "batch_size must be at least 1"),
        (["train", "--model", "resnet21", "--data", "digits", "--out", str(tmp_path / "y")], "6n+2"),
        (["train", "--data", "mnist"], "unknown data set"),
        (["train", "--data", "cifar10", "--data-dir", str(tmp_path / "missing")], "does not exist"),
    ):
        assert main(argv) == 2 or needle == "does not exist", argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "resnet", "train", "--model", "resnet8", "--data", "digits", "--out", str(out),
           "--set", "iterations=100000", "--set", "eval_every=100000", "--no-tensorboard"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text().strip():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    state = load_state(out)
    assert state is not None and state["step"] > 0
    assert (out / "last.safetensors").is_file()


def test_imagenet_layout_folder_trains_and_resumes(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "tiny-imagenet"
    g = torch.Generator().manual_seed(0)
    for split, count in (("train", 12), ("val", 4)):
        for c, cls in enumerate(("n01", "n02")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = (torch.rand(40 + i, 48, 3, generator=g) * 80 + 120 * c).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (root / "train" / "n01" / "broken.jpg").write_bytes(b"not a jpeg")
    overrides = {"iterations": "6", "eval_every": "3", "batch_size": "4", "image_size": "32", "workers": "0",
                 "holdout": "4", "log_every": "3"}
    whole = train(TrainOptions(model="resnet18", data="imagenet", data_dir=str(root), overrides=overrides,
                               out=tmp_path / "whole", progress=False, tensorboard=False))
    assert whole["finished"] and whole["skipped_files"] == 1
    train(TrainOptions(model="resnet18", data="imagenet", data_dir=str(root), overrides=overrides, out=tmp_path / "p",
                       progress=False, tensorboard=False, stop_after=4))
    train(TrainOptions(model="resnet18", data="imagenet", data_dir=str(root), overrides=overrides, out=tmp_path / "p",
                       progress=False, tensorboard=False, resume=True))
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "p")
    assert all(torch.equal(a[k], b[k]) for k in a)


DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, torch
    import torch.distributed as td
    from resnet.train import TrainOptions, train

    out = sys.argv[1]
    summary = train(TrainOptions(model="resnet8", data="digits", out=out, progress=False, tensorboard=False,
                                 overrides={"iterations": "30", "eval_every": "15", "log_every": "5",
                                            "batch_size": "32", "holdout": "100"}))
    rank = int(os.environ["RANK"])
    json.dump({"digest": summary["weights_digest"], "summary": summary}, open(f"{out}/rank{rank}.json", "w"))
    """
)


def test_torchrun_ddp_on_two_cpu_processes_keeps_ranks_identical_and_learns(tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((out / "rank0.json").read_text())
    r1 = json.loads((out / "rank1.json").read_text())
    assert r0["digest"] == r1["digest"]
    assert r0["summary"]["processes"] == 2
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "train"]
    assert losses[-1] < losses[0]
    assert not list(out.glob("rank*.state.pt"))  # only rank 0 writes run files
