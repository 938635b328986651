"""Detection and segmentation scores: COCO box / mask mAP through pycocotools, mean IoU from a confusion matrix,
and :func:`evaluate_dense`, which the dense trainer and ``resnet eval`` both score a network with."""

from __future__ import annotations

import contextlib
import io
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..reference import IMAGENET_MEAN, IMAGENET_STD
from ..data.pennfudan import DenseData, DenseSample


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _xywh(box: Sequence[float]) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_ground_truth(samples: Sequence[DenseSample], classes: Sequence[str]) -> Any:
    """An in-memory ``pycocotools.coco.COCO`` of ``samples`` (image ids are their positions)."""
    from pycocotools.coco import COCO

    images, annotations = [], []
    for i, s in enumerate(samples):
        images.append({"id": i, "height": int(s.image.shape[1]), "width": int(s.image.shape[2]), "file_name": s.name})
        for box, label, mask in zip(s.boxes.tolist(), s.labels.tolist(), s.masks.numpy()):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label), "iscrowd": 0,
                                "bbox": _xywh(box), "area": float(mask.sum()), "segmentation": _rle(mask)})
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": k, "name": n} for k, n in enumerate(classes) if k > 0]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def detections_as_coco(outputs: Sequence[dict[str, Tensor]], with_masks: bool) -> list[dict[str, Any]]:
    """torchvision's detection outputs (one dict per image, in sample order) as COCO result records."""
    records = []
    for i, out in enumerate(outputs):
        masks = (out["masks"][:, 0] > 0.5).numpy() if with_masks and "masks" in out else None
        for j, (box, score, label) in enumerate(zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist())):
            record = {"image_id": i, "category_id": int(label), "bbox": _xywh(box), "score": float(score)}
            if masks is not None:
                record["segmentation"] = _rle(masks[j])
            records.append(record)
    return records


def coco_map(samples: Sequence[DenseSample], outputs: Sequence[dict[str, Tensor]], classes: Sequence[str]) -> dict[str, float]:
    """``box_map`` / ``box_map50`` (and ``mask_map`` / ``mask_map50`` when the outputs carry masks), in %:
    COCO's AP averaged over IoU 0.50:0.95, and at IoU 0.50."""
    from pycocotools.cocoeval import COCOeval

    gt = coco_ground_truth(samples, classes)
    with_masks = bool(outputs) and "masks" in outputs[0]
    records = detections_as_coco(outputs, with_masks)
    result: dict[str, float] = {}
    for kind, iou_type in (("box", "bbox"), ("mask", "segm")):
        if kind == "mask" and not with_masks:
            continue
        if not records:  # nothing detected: every AP is 0 (pycocotools refuses an empty result list)
            result[f"{kind}_map"] = result[f"{kind}_map50"] = 0.0
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes([dict(r) for r in records])
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        result[f"{kind}_map"] = 100.0 * max(0.0, float(ev.stats[0]))
        result[f"{kind}_map50"] = 100.0 * max(0.0, float(ev.stats[1]))
    return result


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """int64 ``[C, C]``: rows the true class, columns the predicted one."""
    index = target.flatten() * num_classes + pred.flatten()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_scores(confusion: Tensor) -> dict[str, Any]:
    """``miou`` (mean over classes present in either truth or prediction), per-class ``iou`` and ``pixel_acc``, in %."""
    conf = confusion.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(inter, float("nan")))
    valid = iou[~iou.isnan()]
    return {"miou": 100.0 * float(valid.mean()) if len(valid) else 0.0,
            "iou": [None if v != v else 100.0 * float(v) for v in iou.tolist()],
            "pixel_acc": 100.0 * float(inter.sum() / conf.sum().clamp_min(1))}


# -- prediction and scoring ------------------------------------------------------------------------
def imagenet_normalize(images: Tensor) -> Tensor:
    """Float photos in [0, 1] normalised with the ImageNet mean and std, as the segmentation heads' backbones expect
    (torchvision's ``normalize``; detection models normalise inside)."""
    from torchvision.transforms.v2.functional import normalize

    return normalize(images, list(IMAGENET_MEAN), list(IMAGENET_STD))


@torch.no_grad()
def predict_samples(model: nn.Module, images: list[Tensor], task: str, device: torch.device) -> list[Any]:
    """Detection: torchvision's output dicts; segmentation: class probabilities ``[C, H, W]`` of each image."""
    was_training = model.training
    model.eval()
    outs: list[Any] = []
    for image in images:
        if task == "detection":
            out = model([image.to(device)])[0]
            outs.append({k: v.cpu() for k, v in out.items()})
        else:
            outs.append(model(imagenet_normalize(image)[None].to(device))["out"][0].softmax(0).cpu())
    model.train(was_training)
    return outs


def evaluate_dense(model: nn.Module, data: DenseData, task: str, device: torch.device) -> dict[str, Any]:
    """COCO box (and mask) mAP for detection, mean IoU and pixel accuracy for segmentation, in %."""
    outs = predict_samples(model, [s.image for s in data.samples], task, device)
    if task == "detection":
        return coco_map(data.samples, outs, data.classes)
    conf = sum(confusion_matrix(p.argmax(0), s.semantic(), len(data.classes)) for p, s in zip(outs, data.samples))
    return iou_scores(conf)  # type: ignore[arg-type]
