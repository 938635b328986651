"""Training detectors and segmenters on our backbones: ``resnet train --task detection|segmentation``.

The run folder is the one every training has (``recipe.json``, ``metrics.jsonl``, ``last.safetensors`` +
``last.state.pt``, ``best.safetensors``, ``summary.json``, ``curves.png``, ``results.md``), written with
the same atomic checkpoint, metrics and report helpers as the classification loop. Batches are drawn
from a permutation fixed by (seed, epoch), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import typing
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..inference.dense import normalize
from ..data.pennfudan import DenseData, DenseSample
from ..errors import UsageError
from ..models.dense import HEADS, create_dense_model, dense_task
from .recipes import coerce_field

TASKS = ("detection", "segmentation")
DENSE_DATASETS = ("pennfudan",)
# The metric each task selects its best checkpoint by (higher is better).
MAIN_METRIC = {"detection": "box_map", "segmentation": "miou"}


@dataclass(frozen=True)
class DenseRecipe:
    name: str
    version: int
    description: str
    head: str  # fasterrcnn, maskrcnn, retinanet (detection); deeplabv3, fcn (segmentation)
    image_size: int = 160  # shorter side of every photo, pixels (longer side at most twice that)
    batch_size: int = 4
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    iterations: int = 400
    warmup: int = 50  # linear warm-up iterations, then cosine decay to 0
    grad_clip: float = 10.0  # 0 = off
    eval_every: int = 0  # 0: a quarter of the run
    log_every: int = 10
    test_images: int = 50  # photos kept for testing: a fixed split, the same for every run
    output_stride: int = 16  # segmentation heads: 8 or 16 (dilated last stages)
    trainable_layers: int = 3  # stages trained from layer4 down, with pretrained weights (from scratch: all)
    hflip: bool = True
    # R-CNN heads, sized down from torchvision's (2000/1000 proposals, 512 RoIs, 100 detections) for a CPU
    proposals: int = 300  # RPN proposals kept after NMS, in training and at test
    rois_per_image: int = 128  # RoIs sampled per photo for the box / mask losses
    detections_per_image: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return dense_task(self.head)

    @property
    def evaluation_interval(self) -> int:
        return self.eval_every or max(1, self.iterations // 4)

    def validate(self) -> "DenseRecipe":
        if self.head not in HEADS:
            raise UsageError(f"recipe field head must be one of {', '.join(HEADS)}, got {self.head!r}")
        for key in ("image_size", "batch_size", "iterations", "log_every", "proposals", "rois_per_image",
                    "detections_per_image"):
            if getattr(self, key) < 1:
                raise UsageError(f"recipe field {key} must be at least 1, got {getattr(self, key)}")
        if self.lr <= 0 or self.warmup < 0 or self.grad_clip < 0 or self.test_images < 0:
            raise UsageError("recipe fields lr must be positive, and warmup, grad_clip, test_images non-negative")
        if self.output_stride not in (8, 16, 32):
            raise UsageError(f"recipe field output_stride must be 8, 16 or 32, got {self.output_stride}")
        return self

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DENSE_RECIPES: dict[str, DenseRecipe] = {
    r.name: r
    for r in (
        DenseRecipe("detection", 1, "Mask R-CNN (torchvision) on our FPN backbone, sized for a CPU: 160 px photos, "
                    "300 proposals, 200 iterations of 4, SGD lr 0.02 with 50 warm-up iterations and cosine decay",
                    head="maskrcnn", iterations=200),
        DenseRecipe("segmentation", 1, "DeepLabV3 (torchvision) on our dilated backbone (output stride 16), pedestrian "
                    "vs background, sized for a CPU: 128 px (square training crops), 800 iterations of 4, SGD lr 0.02 "
                    "with 50 warm-up iterations and cosine decay", head="deeplabv3", image_size=128, iterations=800),
    )
}
_FIELD_TYPES = typing.get_type_hints(DenseRecipe)  # in field order


def resolve_dense_recipe(name: str, overrides: Mapping[str, Any] | None = None) -> DenseRecipe:
    if name not in DENSE_RECIPES:
        raise UsageError(f"unknown recipe {name!r} for a dense task; choose one of {', '.join(DENSE_RECIPES)}")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_FIELD_TYPES) - {"extra", "name", "version", "description"})
    if unknown:
        raise UsageError(f"unknown recipe field(s) {', '.join(unknown)}; fields: {', '.join(k for k in _FIELD_TYPES if k != 'extra')}")
    if {"name", "version", "description"} & set(overrides):
        raise UsageError("name, version and description identify the recipe and cannot be overridden")
    values = {k: coerce_field(_FIELD_TYPES[k], k, v) for k, v in overrides.items()}
    recipe = replace(DENSE_RECIPES[name], **values)
    if values:
        recipe = replace(recipe, extra={"overrides": {k: overrides[k] for k in values}})
    return recipe.validate()


@dataclass
class DenseOptions:
    task: str
    model: str = "resnet18"  # the backbone
    data: str = "pennfudan"
    data_dir: str | None = None
    recipe: str | None = None  # default: the task's recipe
    overrides: dict[str, str] = field(default_factory=dict)
    out: Path | None = None
    seed: int = 0
    device: str | None = None
    pretrained: str | None = None  # classification weights for the backbone (a path)
    resume: bool = False
    overwrite: bool = False
    strict: bool = False
    progress: bool = True
    tensorboard: bool = True
    stop_after: int | None = None
    time_limit: float | None = None
    limit: int | None = None  # use the first N photos only (quick runs, tests)
    command: str = ""
    backbone_overrides: dict[str, Any] = field(default_factory=dict)


def head_options(recipe: DenseRecipe) -> dict[str, Any]:
    """Keyword arguments of :func:`create_dense_model` that the recipe decides (saved with the weights)."""
    if recipe.task == "segmentation":
        return {"output_stride": recipe.output_stride}
    out: dict[str, Any] = {"min_size": recipe.image_size, "max_size": 2 * recipe.image_size}
    if recipe.head in ("fasterrcnn", "maskrcnn"):
        out.update(rpn_pre_nms_top_n_train=2 * recipe.proposals, rpn_post_nms_top_n_train=recipe.proposals,
                   rpn_pre_nms_top_n_test=2 * recipe.proposals, rpn_post_nms_top_n_test=recipe.proposals,
                   box_batch_size_per_image=recipe.rois_per_image, box_detections_per_img=recipe.detections_per_image)
    else:
        out.update(detections_per_img=recipe.detections_per_image)
    return out


def build_dense_model(recipe: DenseRecipe, backbone_name: str, num_classes: int, *, pretrained: str | None = None,
                      backbone_overrides: Mapping[str, Any] | None = None) -> nn.Module:
    """The recipe's head on ``backbone_name``, with the input sizes of the recipe."""
    from ..weights import resolve_pretrained  # a path, or named weights NAME:TAG fetched into the cache

    weights = None if pretrained is None else resolve_pretrained(pretrained)
    return create_dense_model(recipe.head, backbone_name, num_classes, pretrained_backbone=weights,
                              trainable_layers=recipe.trainable_layers, backbone_overrides=backbone_overrides,
                              **head_options(recipe))


# -- batches ----------------------------------------------------------------------------------------
def flip_sample(s: DenseSample) -> DenseSample:
    w = s.image.shape[-1]
    boxes = s.boxes[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1.0, -1.0, 1.0]) + torch.tensor([w, 0.0, w, 0.0])
    return DenseSample(s.name, s.image.flip(-1), boxes, s.labels, s.masks.flip(-1))


def detection_batch(samples: list[DenseSample], task_masks: bool) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    targets = []
    for s in samples:
        t = {"boxes": s.boxes, "labels": s.labels}
        if task_masks:
            t["masks"] = s.masks
        targets.append(t)
    return [s.image for s in samples], targets


def segmentation_batch(samples: list[DenseSample], size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random ``size`` x ``size`` crops (padded with ignored pixels where a photo is smaller), normalised."""
    images, labels = [], []
    for s in samples:
        img, lab = normalize(s.image), s.semantic()
        h, w = lab.shape
        ph, pw = max(0, size - h), max(0, size - w)
        if ph or pw:
            img = F.pad(img, (0, pw, 0, ph))
            lab = F.pad(lab, (0, pw, 0, ph), value=255)
        y = int(torch.randint(0, lab.shape[0] - size + 1, (1,), generator=gen))
        x = int(torch.randint(0, lab.shape[1] - size + 1, (1,), generator=gen))
        images.append(img[:, y:y + size, x:x + size])
        labels.append(lab[y:y + size, x:x + size])
    return torch.stack(images), torch.stack(labels)


def batch_samples(data: DenseData, recipe: DenseRecipe, seed: int, step: int) -> tuple[list[DenseSample], torch.Generator]:
    """The samples of iteration ``step`` (a permutation fixed by seed and epoch) and a generator for its augmentation."""
    n = len(data.samples)
    per_epoch = max(1, n // recipe.batch_size)
    epoch, index = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    picked = order[index * recipe.batch_size:(index + 1) * recipe.batch_size].tolist() if n >= recipe.batch_size else order.tolist()
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 7919 * step + 1)
    samples = [data.samples[i] for i in picked]
    if recipe.hflip:
        samples = [flip_sample(s) if bool(torch.rand((), generator=gen) < 0.5) else s for s in samples]
    return samples, gen


def training_loss(model: nn.Module, samples: list[DenseSample], recipe: DenseRecipe, gen: torch.Generator,
                  device: torch.device) -> tuple[Tensor, dict[str, float]]:
    if recipe.task == "detection":
        images, targets = detection_batch(samples, recipe.head == "maskrcnn")
        losses = model([i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets])
        loss = sum(losses.values())
        return loss, {k: float(v.detach()) for k, v in losses.items()}
    x, y = segmentation_batch(samples, recipe.image_size, gen)
    out = model(x.to(device))
    loss = F.cross_entropy(out["out"], y.to(device), ignore_index=255)
    if "aux" in out:
        loss = loss + 0.5 * F.cross_entropy(out["aux"], y.to(device), ignore_index=255)
    return loss, {}


def dense_lr(recipe: DenseRecipe, step: int) -> float:
    """Linear warm-up from lr/1000 over ``warmup`` iterations, then cosine decay to 0."""
    if step < recipe.warmup:
        return recipe.lr * (0.001 + 0.999 * step / recipe.warmup)
    span = max(1, recipe.iterations - recipe.warmup)
    return 0.5 * recipe.lr * (1 + math.cos(math.pi * min(1.0, (step - recipe.warmup) / span)))
