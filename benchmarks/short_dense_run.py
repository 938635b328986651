"""A short detection run stays short (issue 34, item 8): wall time, the share spent evaluating, CPU time.

Trains the ``detection`` recipe for 30 iterations on Penn-Fudan twice, interleaved: as the recipe says
(evaluations that fall due are skipped while evaluating has taken more than ``eval_share`` of the wall time)
and with ``eval_share=0`` (every evaluation runs, as version 1 did). Prints each run's wall time, evaluation
seconds and share, the process's CPU seconds and the load average around it, then the ratio of the two wall
times. The target: the recipe's run within 120 s on 2 quiet cores and at most a fifth of it evaluating.

    python benchmarks/short_dense_run.py --data-dir /work/shared/data/pennfudan [--iterations 30] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from resnet.train import TrainOptions, train  # noqa: E402


def one_run(data_dir: str, iterations: int, eval_share: str | None, out: Path) -> dict[str, float]:
    overrides = {"iterations": str(iterations), **({"eval_share": eval_share} if eval_share is not None else {})}
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    summary = train(TrainOptions(task="detection", data="pennfudan", data_dir=data_dir, overrides=overrides, out=out,
                                 progress=False, tensorboard=False))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": wall, "train_seconds": summary["seconds"], "eval_seconds": summary["eval_seconds"],
            "cpu": (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime),
            "load_before": load, "load_after": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, torch threads as set by the environment")
    walls: dict[str, list[float]] = {"recipe": [], "every evaluation": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for label, share in (("recipe", None), ("every evaluation", "0")):
                m = one_run(args.data_dir, args.iterations, share, Path(tmp) / f"{label}-{r}".replace(" ", "-"))
                walls[label].append(m["wall"])
                print(f"{label:>16}: {m['wall']:6.1f} s wall (run {m['train_seconds']:.1f} s, evaluating "
                      f"{m['eval_seconds']:.1f} s = {100 * m['eval_seconds'] / m['train_seconds']:.0f} %), "
                      f"{m['cpu']:.1f} s CPU, load {m['load_before']:.1f} -> {m['load_after']:.1f}")
    ratio = min(walls["every evaluation"]) / min(walls["recipe"])
    print(f"every evaluation / recipe wall time: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
