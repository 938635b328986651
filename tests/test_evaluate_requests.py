"""Issue 29: eval and predict as library calls (``resnet.evaluate.requests``): the library decides whether a SOURCE
is a detection / segmentation run or a classifier, loads it and returns records; its messages name options as
Python spells them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet import create_model
from resnet.errors import CheckpointError, UsageError
from resnet.evaluate.ensemble import EvalReport
from resnet.evaluate.requests import (ClassPredictions, EvalRequest, LoadOptions, PredictRequest, run_eval,
                                      run_predict)
from resnet.models.interop import save_weights

CLASSES = ["apple", "boat", "cloud"]
PRE = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "input_size": 32, "resize": 36, "crop": 32}


@pytest.fixture()
def classifier(tmp_path: Path) -> Path:
    net = create_model("resnet18", layers=(1, 1), widths=(8, 16), stem_width=8, num_classes=3).eval()
    path = tmp_path / "net.safetensors"
    save_weights(net, path, {"classes": CLASSES, "dataset": "synthetic", "preprocess": PRE})
    return path


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for ci, name in enumerate(CLASSES):
        (tmp_path / "data" / "val" / name).mkdir(parents=True)
        for i in range(2):
            a = rng.integers(0, 60, size=(40, 48, 3), dtype=np.uint8)
            a[..., ci] += 150
            Image.fromarray(a).save(tmp_path / "data" / "val" / name / f"{i}.png")
    return tmp_path / "data"


@pytest.fixture()
def dense_run(tmp_path: Path) -> Path:
    """A segmentation run folder before its first checkpoint: what it is, read off its recipe."""
    run = tmp_path / "seg"
    run.mkdir()
    (run / "recipe.json").write_text(json.dumps({"task": "segmentation"}))
    return run


def test_a_classifier_is_scored_under_the_protocol_with_progress(classifier: Path, photos: Path) -> None:
    seen: list[tuple[int, int]] = []
    report = run_eval(EvalRequest((str(classifier),), data_dir=str(photos), protocol="flip", batch_size=4),
                      progress=lambda done, total: seen.append((done, total)))
    assert isinstance(report, EvalReport) and report.protocol == "flip" and report.classes == CLASSES
    assert report.members[0].metrics.count == 6 and seen[-1] == (6, 6)


def test_a_dense_run_goes_to_dense_scoring(dense_run: Path) -> None:
    with pytest.raises(CheckpointError, match="holds no best.safetensors or last.safetensors"):
        run_eval(EvalRequest((str(dense_run),)))


def test_predict_answers_file_by_file_with_a_record(classifier: Path, photos: Path) -> None:
    result = run_predict(PredictRequest(str(classifier), (str(photos),), top=2, load=LoadOptions(resize=40, crop=32)))
    assert isinstance(result, ClassPredictions) and result.member.preprocess.resize == 40
    items = list(result.items)
    record = result.record(items, [])
    assert len(record["predictions"]) == 6 and all(len(p["top"]) == 2 for p in record["predictions"])
    assert record["engine"] == "pytorch eager" and record["protocol"] == "center"


@pytest.mark.parametrize(("request_kw", "message"), [
    ({"out": "pictures"}, "`out` is where `explain` writes its pictures"),
    ({"top": 0}, "`top` must be at least 1"),
    ({"load": LoadOptions(crop=0)}, "`crop` must be from 1 to"),
])
def test_classifier_requests_refuse_with_option_names(classifier: Path, photos: Path, request_kw: dict,
                                                      message: str) -> None:
    with pytest.raises(UsageError, match=message):
        run_predict(PredictRequest(str(classifier), (str(photos),), **request_kw))


def test_dense_predictions_need_a_folder_and_a_score_threshold(dense_run: Path, photos: Path) -> None:
    with pytest.raises(UsageError, match="give `out`, the folder for the PNG files"):
        run_predict(PredictRequest(str(dense_run), (str(photos),)))
    with pytest.raises(UsageError, match="`threshold` must be a score from 0 to 1"):
        run_predict(PredictRequest(str(dense_run), (str(photos),), out="drawn", threshold=2.0))
