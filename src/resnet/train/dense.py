"""Detection and segmentation on our backbones: the :class:`Dense` task of the one trainer
(:mod:`resnet.train.trainer`), and its recipes' model, batches and loss.

The run folder is the one every training has (``recipe.json``, ``metrics.jsonl``, ``last.safetensors`` +
``last.state.pt``, ``best.safetensors``, ``summary.json``, ``curves.png``, ``results.md``). Batches are
drawn from a permutation fixed by (seed, epoch), so a resumed run continues exactly where it stopped. The
best checkpoint is chosen on ``holdout`` photos taken from the training photos; the test photos are scored
once, at the end (and by ``resnet eval`` on the run).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.pennfudan import DenseData, DenseSample
from ..errors import UsageError
from ..inference.dense import evaluate_dense, imagenet_normalize
from ..models.dense import HEADS, create_dense_model, dense_task
from .distributed import DistContext
from .optim import GroupPlan, group_plan
from .recipes import Recipe
from .report import MAIN_METRIC

DENSE_DATASETS = ("pennfudan",)


def head_options(recipe: Recipe) -> dict[str, Any]:
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


def build_dense_model(recipe: Recipe, backbone_name: str, num_classes: int, *, pretrained: str | None = None,
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
        img, lab = imagenet_normalize(s.image), s.semantic()
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


def batch_samples(data: DenseData, recipe: Recipe, seed: int, step: int) -> tuple[list[DenseSample], torch.Generator]:
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


def training_loss(model: nn.Module, samples: list[DenseSample], recipe: Recipe, gen: torch.Generator,
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


def hold_out(data: DenseData, count: int) -> tuple[DenseData, DenseData]:
    """(training, hold-out): ``count`` photos spread evenly over ``data`` (by name; the same for every seed)."""
    n = len(data.samples)
    if not 0 <= count < n:
        raise UsageError(f"holdout={count} leaves no training photos out of {n}; lower the recipe field holdout")
    picked = set(np.linspace(0, n - 1, count).round().astype(int).tolist()) if count else set()
    keep = [s for i, s in enumerate(data.samples) if i not in picked]
    held = [s for i, s in enumerate(data.samples) if i in picked]
    return DenseData(keep, data.skipped, data.classes), DenseData(held, [], data.classes)


@contextlib.contextmanager
def boxes_only(model: nn.Module) -> Iterator[None]:
    """Mask R-CNN without its mask branch for a while (torchvision's RoIHeads skips it when ``mask_roi_pool`` is
    ``None``): choosing the best checkpoint by box mAP needs no masks, which cost most of a photo's evaluation."""
    heads = getattr(model, "roi_heads", None)
    if heads is None or getattr(heads, "mask_roi_pool", None) is None:
        yield
        return
    saved = heads.mask_roi_pool, heads.mask_head, heads.mask_predictor
    heads.mask_roi_pool = heads.mask_head = heads.mask_predictor = None
    try:
        yield
    finally:
        heads.mask_roi_pool, heads.mask_head, heads.mask_predictor = saved


class DenseStep:
    """The step strategy of dense tasks: the batch's loss through the network, then its backward."""

    def __init__(self, net: nn.Module, scaler: torch.amp.GradScaler, recipe: Recipe, device: torch.device) -> None:
        self.net, self.scaler, self.recipe, self.device = net, scaler, recipe, device

    def forward_backward(self, samples: list[DenseSample], gen: torch.Generator, *, amp: torch.dtype | None,
                         label_smoothing: float) -> tuple[Tensor, dict[str, float]]:
        with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
            loss, parts = training_loss(self.net, samples, self.recipe, gen, self.device)
        self.scaler.scale(loss).backward()
        return loss.detach(), parts


class Dense:
    """Detection or segmentation on Penn-Fudan (:data:`DENSE_DATASETS`): the recipe's head on ``model`` as backbone,
    started from classification weights with ``init``."""

    selection_key = ""
    lower_is_better = False
    interim_splits = ("holdout",)  # the 50 test photos are scored once, at the end

    def __init__(self, opts: Any) -> None:
        self.opts, self.name = opts, opts.task
        self.selection_key = f"holdout_{MAIN_METRIC[opts.task]}"
        if opts.data not in DENSE_DATASETS:
            raise UsageError(f"`task` {opts.task} trains on {', '.join(DENSE_DATASETS)}, not {opts.data!r}")
        if opts.data_dir is None:
            raise UsageError("`task` detection/segmentation needs `data_dir`: the Penn-Fudan folder (PNGImages/, PedMasks/)")

    def resolve(self, opts: Any, recipe: Recipe, dist: DistContext) -> str:
        self.model_name = opts.model or "resnet18"
        self.depth = None
        return self.model_name

    def default_out(self, model_name: str, recipe: Recipe) -> Path:
        return Path("runs") / f"{recipe.head}-{model_name}-{self.opts.data}"

    def load_data(self, recipe: Recipe, device: torch.device, dist: DistContext, amp: torch.dtype | None) -> None:
        from ..data.pennfudan import load_pennfudan

        if recipe.head not in HEADS:
            raise UsageError(f"recipe field head must be one of {', '.join(HEADS)}, got {recipe.head!r}")
        if dense_task(recipe.head) != recipe.task:
            raise UsageError(f"recipe {recipe.name}: head {recipe.head} is a {dense_task(recipe.head)} head, not {recipe.task}")
        self.recipe, self.device, self.dist = recipe, device, dist
        opts = self.opts
        train, self.test = load_pennfudan(opts.data_dir, recipe.image_size, test_images=recipe.test_images,
                                          limit=opts.limit, strict=opts.strict)
        self.train, self.holdout = hold_out(train, recipe.holdout)
        self.classes = train.classes

    def build_model(self, recipe: Recipe, device: torch.device) -> nn.Module:
        return build_dense_model(recipe, self.model_name, len(self.classes), pretrained=self.opts.init,
                                 backbone_overrides=self.opts.model_overrides).to(device)

    def group_plan(self, model: nn.Module, recipe: Recipe) -> list[GroupPlan]:
        return group_plan(model, recipe, pretrained=False, split_head=False)

    def strategy(self, net: nn.Module, model: nn.Module, scaler: torch.amp.GradScaler, recipe: Recipe,
                 device: torch.device, dist: DistContext) -> DenseStep:
        return DenseStep(net, scaler, recipe, device)

    def batches(self, iteration: int) -> Iterator[tuple[list[DenseSample], torch.Generator]]:
        """The batch of each iteration from ``iteration`` on; under DDP each process takes its share of it."""
        rank, world = self.dist.rank, self.dist.world_size
        while True:
            samples, gen = batch_samples(self.train, self.recipe, self.opts.seed, iteration)
            yield (samples[rank::world] if world > 1 else samples), gen
            iteration += 1

    def batches_per_epoch(self) -> int:
        return max(1, len(self.train.samples) // self.recipe.batch_size)

    def batch_len(self, batch: tuple[Any, ...]) -> int:
        return len(batch[0])

    def train_stats(self, loss: Tensor, out: dict[str, float], batch: tuple[Any, ...]) -> dict[str, Tensor]:
        n = float(len(batch[0]))
        stats = {"loss": loss.detach().double() * n, "n": torch.tensor(n, dtype=torch.float64, device=loss.device)}
        for key, value in out.items():
            stats[f"loss_{key.removeprefix('loss_')}"] = torch.tensor(value * n, dtype=torch.float64, device=loss.device)
        return stats

    def window_record(self, sums: dict[str, float]) -> dict[str, Any]:
        return {key: value / sums["n"] for key, value in sums.items() if key != "n"}

    def eval_interval(self, recipe: Recipe) -> int:
        return recipe.eval_every or max(1, recipe.iterations // 4)

    def eval_images(self, split: str) -> int:
        return len((self.holdout if split == "holdout" else self.test).samples)

    def evaluate(self, net: nn.Module, split: str, abandon: Callable[[], bool] | None) -> dict[str, Any] | None:
        data = self.holdout if split == "holdout" else self.test
        if not data.samples:
            return {}
        with boxes_only(net) if split == "holdout" else contextlib.nullcontext():  # selection: box mAP or mean IoU
            metrics = evaluate_dense(net, data, self.name, self.device)
        prefix = "holdout_" if split == "holdout" else ""  # test scores keep the names ``resnet eval`` prints
        return {prefix + k: v for k, v in metrics.items() if not isinstance(v, list)}

    def eval_line(self, record: dict[str, Any], total: int) -> str:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in record.items()
                          if k not in ("kind", "step", "elapsed", "eval_seconds") and isinstance(v, float))
        return f"iteration {record['step']}/{total}: {shown or 'no hold-out or test photos'}"

    def metadata(self) -> dict[str, Any]:
        """What :func:`resnet.models.dense.dense_model_from_checkpoint` rebuilds the model from."""
        opts, recipe = self.opts, self.recipe
        return {"task": recipe.task, "dense": {"head": recipe.head, "backbone": self.model_name,
                "num_classes": len(self.classes), "image_size": recipe.image_size, "head_options": head_options(recipe),
                "backbone_overrides": dict(opts.model_overrides)},
                "classes": list(self.classes), "dataset": opts.data, "recipe": recipe.name,
                "recipe_version": recipe.version, "seed": opts.seed}

    def header(self) -> dict[str, Any]:
        return {"head": self.recipe.head, "init": self.opts.init, "limit": self.opts.limit}

    def identity(self) -> dict[str, Any]:
        return {"limit": self.opts.limit}

    def announce(self, model_name: str, out: Path) -> str:
        return (f"resnet train: {self.recipe.head} on {model_name} ({self.start_label()}), {self.opts.data}: "
                f"{len(self.train.samples)} training / {len(self.holdout.samples)} hold-out / {len(self.test.samples)} "
                f"test photos at {self.recipe.image_size} px -> {out}")

    def start_label(self) -> str:
        return "from " + self.opts.init if self.opts.init else "from scratch"

    def notes(self, optimizer: torch.optim.Optimizer) -> list[str]:
        return []

    def skipped(self) -> list[Any]:
        return list(self.train.skipped) + list(self.test.skipped)

    def per_class(self, net: nn.Module) -> dict[str, Any]:
        return {}  # one foreground class: the main metric says it all

    def summary_fields(self) -> dict[str, Any]:
        return {"head": self.recipe.head, "init": self.opts.init, "train_images": len(self.train.samples),
                "holdout_images": len(self.holdout.samples), "test_images": len(self.test.samples),
                "skipped": self.skipped()[:50]}

    def close(self) -> None:
        pass
