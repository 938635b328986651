"""Time to accuracy: one `resnet train` run of a recipe on the real CIFAR-10, timed from a cold start of the
command to its final test score, with the host's fp32 matrix-product rate measured before and after (so a
slow host shows in the same output).

    .venv/bin/python benchmarks/time_to_accuracy.py [--recipe cifar-fast] [--set KEY=VALUE ...] [--seed N] [--out DIR]
        [--target 93 ...] [--processes 2]

With ``--processes N`` the run is ``torchrun --standalone --nproc_per_node N`` of the same command: N processes
on one machine, each with its share of the cores as intra-op threads and its share of every batch (DDP over gloo;
batch norm over each process's share, as ``core_replicas`` does with threads).

With ``--target PCT`` the run also scores the test set after every epoch (the recipe's views; ``eval_every`` set
to an epoch unless given) and reports, per target, the first epoch at or above it and the run's seconds up to
there with the evaluations left out (``time_to``): the time to 93 % of a recipe that evaluates only at its end.

Prints wall time, accuracy (with the recipe's declared test views), images/s and the matmul rates, and writes
them to ``<out>/time_to_accuracy.json`` beside the run's weights: ``accuracy``, ``epochs``, ``wall_s``,
``images_per_s``, ``matmul_gflops_start``, ``matmul_gflops_end`` (plus the command and the CPU). Issue 19's
target: ResNet-20 at >= 91.25 % in <= 30 min on 2 cores, i.e. <= 16 epochs and >= 440 images/s on a host
measuring >= 160 GFLOP/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from train_throughput import matmul_peak_gflops  # noqa: E402

TRAIN_IMAGES = 50_000  # CIFAR-10's training set: what an epoch is


def times_to(records: list[dict], targets: list[float], batch_size: int) -> list[dict]:
    """For each target accuracy (%), the first evaluation of the test set at or above it in ``records`` (the run's
    ``metrics.jsonl``): its epoch, the run's seconds there (``wall_s``) and without evaluating (``train_s``);
    ``None`` figures where the run never reached it."""
    evals = [r for r in records if r.get("kind") == "eval" and r.get("test_error") is not None]
    out = []
    for target in targets:
        hit = next((r for r in evals if 100.0 - float(r["test_error"]) >= target), None)
        out.append({"target": target, "accuracy": None if hit is None else round(100.0 - float(hit["test_error"]), 2),
                    "epoch": None if hit is None else round(int(hit["step"]) * batch_size / TRAIN_IMAGES, 2),
                    "wall_s": None if hit is None else hit["elapsed"],
                    "train_s": None if hit is None else round(hit["elapsed"] - hit.get("eval_seconds", 0.0), 1)})
    return out


def launch(processes: int) -> tuple[list[str], dict[str, str]]:
    """The interpreter command that starts ``processes`` trainers (torchrun's module beyond one) and their
    environment: each process gets an equal share of this process's cores as its intra-op threads."""
    if processes < 1:
        raise SystemExit(f"--processes must be at least 1, got {processes}")
    if processes == 1:
        return [sys.executable], dict(os.environ)
    cores = len(os.sched_getaffinity(0))
    if processes > cores:
        raise SystemExit(f"--processes {processes} exceeds this machine's {cores} cores; use at most {cores}")
    env = {**os.environ, "OMP_NUM_THREADS": str(cores // processes)}
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)], env


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="network (default: the one the recipe names, else resnet20)")
    p.add_argument("--recipe", default="cifar-fast")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and augmentation: "
                   "run several to see a variant's spread")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared/data/cifar10"))
    p.add_argument("--out", type=Path, default=ROOT / "runs/time-to-accuracy")
    p.add_argument("--target", type=float, action="append", default=[], metavar="PCT",
                   help="report the time to this test accuracy (scores the test set every epoch)")
    p.add_argument("--processes", type=int, default=1,
                   help="train as this many processes under torchrun (DDP), the cores shared out between them")
    args = p.parse_args()

    import torch

    gflops_start = matmul_peak_gflops(2.0)
    bf16_start = matmul_peak_gflops(2.0, torch.bfloat16)
    launcher, env = launch(args.processes)
    train = ["-m", "resnet", "train", *(["--model", args.model] if args.model else []), "--data", "cifar10", "--data-dir",
             args.data_dir, "--recipe", args.recipe, "--out", str(args.out), "--overwrite", "--no-progress", "--seed", str(args.seed)]
    for item in args.overrides:
        train += ["--set", item]
    if args.target and not any(item.startswith("eval_every=") for item in args.overrides):
        from resnet.train.recipes import resolve_recipe

        batch = resolve_recipe(args.recipe, dict(item.split("=", 1) for item in args.overrides)).batch_size
        train += ["--set", f"eval_every={-(-TRAIN_IMAGES // batch)}"]
    command = [*launcher, *train]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    wall = time.perf_counter() - start
    gflops_end = matmul_peak_gflops(2.0)
    bf16_end = matmul_peak_gflops(2.0, torch.bfloat16)

    summary = json.loads((args.out / "summary.json").read_text())
    header = json.loads((args.out / "recipe.json").read_text())
    recipe = summary["recipe"]
    result = {
        "accuracy": round(100.0 - float(summary["final"]["test_error"]), 2),
        "epochs": round(int(summary["steps"]) * int(recipe["batch_size"]) / TRAIN_IMAGES, 2),
        "wall_s": round(wall, 1),
        "images_per_s": summary["images_per_s"],
        "matmul_gflops_start": round(gflops_start, 1),
        "matmul_gflops_end": round(gflops_end, 1),
        "bf16_matmul_gflops_start": round(bf16_start, 1), "bf16_matmul_gflops_end": round(bf16_end, 1),
        "model": header["model"], "precision": header["precision"],
        "seed": args.seed,
        "test_views": {"flip": recipe.get("test_flip"), "shift": recipe.get("test_shift")},
        "command": ("resnet " if args.processes == 1 else f"torchrun --standalone --nproc_per_node {args.processes} -m resnet ")
                   + shlex.join(train[2:]),
        "processes": args.processes,
        "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
        "recipe": f"{recipe.get('name', args.recipe)} v{recipe.get('version', '?')}",
    }
    if args.target:
        from resnet.train.metrics import read_metrics

        result["time_to"] = times_to(read_metrics(args.out / "metrics.jsonl"), args.target, int(recipe["batch_size"]))
    (args.out / "time_to_accuracy.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['model']} {result['recipe']}: {result['accuracy']:.2f} % after {result['epochs']} epochs in "
          f"{wall / 60:.1f} min ({result['images_per_s']} images/s); matmul fp32 {gflops_start:.0f} -> "
          f"{gflops_end:.0f}, bf16 {bf16_start:.0f} -> {bf16_end:.0f} GFLOP/s; {result['cpu']} ({result['cpu_capability']})")
    for t in result.get("time_to", []):
        print(f"  to {t['target']:g} %: " + (f"{t['accuracy']:.2f} % at epoch {t['epoch']}, {t['train_s'] / 60:.1f} min "
                                           f"without the evaluations ({t['wall_s'] / 60:.1f} min with them)"
                                           if t["epoch"] is not None else "not reached"))


if __name__ == "__main__":
    main()
