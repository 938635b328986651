"""Damaged pictures are said to be damaged: `resnet predict` prints a line naming the file and what the decoder
said (and a "damaged" field in --json); --strict refuses them with a non-zero exit."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnet
from resnet.cli import main
from resnet.models.interop import save_weights

pytestmark = pytest.mark.usefixtures("single_thread")


def _corrupt_jpeg(path: Path) -> Path:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((200, 300, 3)) * 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    data, mutate = bytearray(buf.getvalue()), np.random.default_rng(0)
    for _ in range(3):
        data[int(mutate.integers(600, len(data) - 10))] = int(mutate.integers(0, 256))
    path.write_bytes(bytes(data))
    return path


def test_predict_marks_damaged_files_and_strict_refuses_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    ckpt = tmp_path / "net.safetensors"
    save_weights(resnet.create_model("resnet8"), ckpt, {"classes": [str(i) for i in range(10)], "dataset": "test"})
    bad = _corrupt_jpeg(tmp_path / "bad.jpg")
    good = tmp_path / "good.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(good)

    assert main(["predict", str(ckpt), str(bad), str(good)]) == 0
    out, err = capsys.readouterr()
    assert str(bad) in out and str(good) in out
    warning = [line for line in err.splitlines() if "damaged" in line]
    assert len(warning) == 1 and str(bad) in warning[0] and "Corrupt JPEG data" in warning[0]

    assert main(["predict", str(ckpt), str(bad), str(good), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    marks = {Path(p["path"]).name: p.get("damaged") for p in report["predictions"]}
    assert marks["bad.jpg"].startswith("Corrupt JPEG data") and marks["good.png"] is None

    assert main(["predict", str(ckpt), str(bad), str(good), "--strict"]) == 1
    out, err = capsys.readouterr()
    assert str(good) in out and str(bad) not in out
    assert f"image {bad} is damaged" in err and "Traceback" not in err
