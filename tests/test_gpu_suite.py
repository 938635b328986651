"""The GPU suite (benchmarks/gpu_suite.py) runs end to end on the CPU at tiny sizes, so it cannot rot
between the sessions that have a GPU; its figures on a GPU come from the full run."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_suite  # noqa: E402


def test_tiny_suite_on_cpu_writes_every_figure(tmp_path: Path) -> None:
    torch.manual_seed(0)
    result = gpu_suite.main(["--tiny", "--device", "cpu", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "cpu-smoke.json").read_text())
    assert saved["environment"]["command"].endswith("--tiny --device cpu --out " + str(tmp_path))
    assert saved["environment"]["torch"] == torch.__version__
    assert [r["variant"].split(":")[0] for r in saved["train"]] == ["reference", "ours", "ours"]
    assert "real JPEGs" in saved["train"][2]["variant"]
    for row in saved["train"] + saved["inference"]:
        assert row["images_per_s"] > 0 and row["percent_of_bf16_peak"] > 0
    assert saved["train"][0]["vs_reference"] == pytest.approx(1.0)
    assert set(saved["targets"]) == {"train_speedup_vs_reference", "train_images_per_s", "jpeg_share_of_synthetic"}
    assert saved["macs_per_image"] == result["macs_per_image"] > 0
    text = (tmp_path / "cpu-smoke.md").read_text()
    assert "| ours: compiled, bf16, channels_last (synthetic) |" in text and "## Targets" in text


def test_jpeg_batches_are_normalised_crops_of_the_asked_size(tmp_path: Path) -> None:
    cfg = gpu_suite.Config.tiny()
    paths = gpu_suite.write_jpegs(tmp_path, cfg)
    assert len(paths) == cfg.jpegs and all(p.stat().st_size > 0 for p in paths)
    loader = gpu_suite.JpegBatches(paths, cfg, torch.device("cpu"))
    try:
        x, y = next(iter(loader))
    finally:
        loader.close()
    assert x.shape == (cfg.batch, 3, cfg.size, cfg.size) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert -3 < x.mean().item() < 3 and x.std().item() > 0.05  # normalised, not constant
    assert y.shape == (cfg.batch,) and 0 <= int(y.min()) and int(y.max()) < 1000


def test_generated_photos_follow_imagenet_sizes() -> None:
    sizes = gpu_suite.imagenet_like_sizes(4000, 1.0, random.Random(1))
    widths, heights = zip(*sizes)
    assert 380 < sum(widths) / len(widths) < 520 and 330 < sum(heights) / len(heights) < 450
    assert 0.15 < sum(h > w for w, h in sizes) / len(sizes) < 0.4  # some portrait photos


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is visible")
def test_asking_for_cuda_without_a_gpu_is_one_clear_line() -> None:
    with pytest.raises(SystemExit, match="no CUDA device is visible"):
        gpu_suite.main(["--device", "cuda"])
