"""benchmarks/time_to_accuracy_curve.py: the variants of a time-to-accuracy study as a table and a plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import time_to_accuracy_curve as curve  # noqa: E402


def _run(root: Path, name: str, accuracy: float, epochs: float, sets: list[str], **extra: object) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    command = "resnet train --model resnet20 --recipe cifar-fast --out x --no-progress" + "".join(f" --set {s}" for s in sets)
    result = {"accuracy": accuracy, "epochs": epochs, "wall_s": 600.0, "images_per_s": 1000.0, "matmul_gflops_start": 210.0,
              "matmul_gflops_end": 220.0, "command": command, "recipe": "cifar-fast v3",
              "test_views": {"flip": True, "shift": 2}, **extra}
    (folder / "time_to_accuracy.json").write_text(json.dumps(result))
    return folder


def test_table_and_plot_of_the_variants(tmp_path: Path) -> None:
    runs = [_run(tmp_path, "b32", 90.54, 16.0, ["iterations=25000", "batch_size=32", "lr=0.05", "eval_every=25000"]),
            _run(tmp_path, "v3", 91.34, 26.9, []),
            _run(tmp_path, "paused", 90.93, 22.0, ["batch_size=64"], wall_s_valid=False, seed=2),
            _run(tmp_path, "b64", 90.53, 22.0, ["batch_size=64"])]
    curve.main([*map(str, runs), str(tmp_path / "out"), "--out", str(tmp_path / "out")])  # a glob may match --out
    text = (tmp_path / "out" / "variants.md").read_text()
    rows = text.split("\n\n")[0].splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == ["`b32`", "`b64`", "`paused`", "`v3`"]  # by epochs, then accuracy
    rows.pop(1)
    assert "`batch_size=32`, `lr=0.05`" in rows[0] and "iterations" not in rows[0] and "10.0 min" in rows[0] and "| mirror, ±2 px |" in rows[0]
    assert "(shared CPU)" in rows[1] and "`batch_size=64`, seed 2 |" in rows[1] and "**91.34 %**" in rows[2] and "| as is |" in rows[2]
    assert text.splitlines()[-1] == "| cifar-fast v3 | `batch_size=64` | 22.0 | 0, 2 | 90.73 % | 90.53–90.93 |"
    assert (tmp_path / "out" / "variants.png").stat().st_size > 10_000
