"""Command-line start-up: wall time of ``resnet --help``, every ``resnet COMMAND --help``, ``resnet list``
(default table, with an empty user cache: counts come from the table shipped in the package) and
``resnet list --names-only``, beside ``python -c "import torch"`` measured in the same run.

    .venv/bin/python benchmarks/cli_startup.py             # 5 runs each, medians
    .venv/bin/python benchmarks/cli_startup.py --runs 9

Targets (issue 14): ``resnet --help`` <= 2 s and ``resnet list`` <= 3 s on the 2-core development machine.
Every command is a fresh process, as a user starts it; shared machines make single runs noisy, so the
medians and the ratio to the PyTorch import of the same run are what to compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = str(REPO / "src")
COMMANDS = ("list", "summary", "train", "eval", "predict", "experiment", "export", "bench")
TARGETS = {"resnet --help": 2.0, "resnet list": 3.0}


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command; medians are reported (default 5)")
    args = parser.parse_args()
    py = sys.executable
    resnet = [py, "-m", "resnet"]
    cases = {
        "python -c 'import torch' (reference)": [py, "-c", "import torch"],
        "resnet --help": [*resnet, "--help"],
        **{f"resnet {c} --help": [*resnet, c, "--help"] for c in COMMANDS},
        "resnet list": [*resnet, "list"],
        "resnet list --names-only": [*resnet, "list", "--names-only"],
    }
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPATH": SRC, "RESNET_CACHE_DIR": cache}  # an empty user cache
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):  # interleaved, so load on the machine spreads over every command alike
            for name, argv in cases.items():
                times[name].append(wall(argv, env))
    torch_s = statistics.median(times["python -c 'import torch' (reference)"])
    print(f"{'command':<40} {'median s':>9} {'max s':>7} {'vs import torch':>16} {'target':>8}")
    for name, values in times.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"<= {target:g} ok" if statistics.median(values) <= target else f"> {target:g} MISSED")
        print(f"{name:<40} {statistics.median(values):9.2f} {max(values):7.2f} {statistics.median(values) / torch_s:15.2f}x {verdict:>8}")


if __name__ == "__main__":
    main()
