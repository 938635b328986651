"""``resnet eval`` / ``resnet predict`` on detection and segmentation runs: scores on the test photos, and
photos drawn with their boxes and masks (PNG)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import CheckpointError, DataError

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990")


def dense_task_of(source: str | os.PathLike[str]) -> str | None:
    """``detection`` / ``segmentation`` when ``source`` is such a run folder or weights file, else ``None``."""
    path = Path(source)
    if path.is_dir() and (path / "recipe.json").is_file():
        try:
            task = json.loads((path / "recipe.json").read_text()).get("task")
        except (OSError, ValueError, AttributeError):
            return None
        return task if task in ("detection", "segmentation") else None
    if path.is_file() and path.suffix == ".safetensors":
        from ..models.interop import read_state_dict

        try:
            _, meta = read_state_dict(path)
        except CheckpointError:
            return None
        return meta.get("task") if meta.get("task") in ("detection", "segmentation") else None
    return None


def weights_of(source: str | os.PathLike[str]) -> Path:
    path = Path(source)
    if path.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path} holds no best.safetensors or last.safetensors; train it first")
    return path


@dataclass(frozen=True)
class DenseEval:
    source: str
    task: str
    head: str
    backbone: str
    photos: int
    skipped: int
    metrics: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def evaluate_dense_source(source: str, data_dir: str | None, *, limit: int | None = None, device: str = "cpu") -> DenseEval:
    """Score a run (or its weights file) on the Penn-Fudan test photos at its training size."""
    from ..data.pennfudan import load_pennfudan
    from ..models.dense import dense_model_from_checkpoint
    from ..inference.dense import evaluate_dense

    weights = weights_of(source)
    model, meta = dense_model_from_checkpoint(weights)
    info = meta["dense"]
    recipe = _run_recipe(source)
    data_dir = data_dir or recipe.get("data_dir")
    if not data_dir:
        raise DataError("this run does not say where its data is; pass `data_dir` (the PennFudanPed folder)")
    test_images = int(recipe.get("recipe", {}).get("test_images", 50))
    _, test = load_pennfudan(data_dir, int(info["image_size"]), test_images=test_images, limit=recipe.get("limit"))
    if limit is not None:
        test.samples = test.samples[:limit]
    if not test.samples:
        raise DataError(f"no usable test photo in {data_dir}")
    metrics = evaluate_dense(model.to(device), test, meta["task"], torch.device(device))
    return DenseEval(str(source), meta["task"], info["head"], info["backbone"], len(test.samples), len(test.skipped), metrics)


def _run_recipe(source: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(source)
    folder = path if path.is_dir() else path.parent
    try:
        return json.loads((folder / "recipe.json").read_text())
    except (OSError, ValueError):
        return {}


def draw_prediction(image: Tensor, output: Any, task: str, classes: Sequence[str], threshold: float = 0.5) -> Tensor:
    """uint8 ``[3, H, W]``: ``image`` (float, [0, 1]) with the detections (boxes, labels, scores, masks) or the
    segmentation (each non-background class tinted) drawn on it."""
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    canvas = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    if task == "segmentation":
        labels = output.argmax(0)
        masks = torch.stack([labels == k for k in range(1, len(classes))]) if len(classes) > 1 else labels[None] < 0
        return draw_segmentation_masks(canvas, masks, alpha=0.5, colors=list(PALETTE[: len(masks)]))
    keep = output["scores"] >= threshold
    boxes, scores, labels = output["boxes"][keep], output["scores"][keep], output["labels"][keep]
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(boxes))]
    if "masks" in output and len(boxes):
        canvas = draw_segmentation_masks(canvas, output["masks"][keep][:, 0] > 0.5, alpha=0.45, colors=colors)
    names = [f"{classes[int(k)] if int(k) < len(classes) else int(k)} {float(s):.2f}" for k, s in zip(labels, scores)]
    return draw_bounding_boxes(canvas, boxes, labels=names, colors=colors, width=2) if len(boxes) else canvas


def save_png(image: Tensor, path: Path) -> Path:
    from PIL import Image

    from ..utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
    return path


@dataclass(frozen=True)
class DrawnPrediction:
    path: str
    out: str
    objects: int  # detections at or above the threshold; segmentation: share of pixels not background (%)


def predict_dense(source: str, paths: Sequence[Path], out_dir: Path, *, threshold: float = 0.5,
                  device: str = "cpu") -> tuple[list[DrawnPrediction], list[tuple[str, str]]]:
    """Draw the predictions of run ``source`` on each photo into ``out_dir/<name>.png``; unreadable photos are
    returned as ``(path, reason)``."""
    from ..data.decode import DecodeFailure, decode_file
    from ..data.pennfudan import resize_array, scaled_size
    from ..models.dense import dense_model_from_checkpoint
    from ..inference.dense import predict_samples

    model, meta = dense_model_from_checkpoint(weights_of(source))
    model.to(device)
    size, classes, task = int(meta["dense"]["image_size"]), list(meta.get("classes") or []), meta["task"]
    drawn, failed = [], []
    for path in paths:
        try:
            photo = decode_file(path, 3)
        except DecodeFailure as err:
            failed.append((str(path), f"unreadable image ({err})"))
            continue
        h, w = scaled_size(*photo.shape[:2], size)
        image = torch.from_numpy(resize_array(photo, h, w, smooth=True)).permute(2, 0, 1).float().div(255)
        output = predict_samples(model, [image], task, torch.device(device))[0]
        target = save_png(draw_prediction(image, output, task, classes, threshold), out_dir / f"{path.stem}.png")
        count = (int((output["scores"] >= threshold).sum()) if task == "detection"
                 else round(100.0 * float((output.argmax(0) > 0).float().mean()), 1))
        drawn.append(DrawnPrediction(str(path), str(target), count))
    return drawn, failed
