"""What a training run learns: the :class:`Task` protocol, and image classification (:class:`Classification`).

The trainer (:mod:`resnet.train.trainer`) owns what every run has: the run folder, resume, stop rules,
signals, the time limit, logging, checkpoints, EMA, DDP, the evaluation budget and the summary. A task
owns what differs: the network it builds, its batches and their loss, its evaluation and the metric that
selects the best checkpoint, and the metadata saved with the weights. Detection and segmentation are
:class:`resnet.train.dense.Dense`; :func:`make_task` picks one by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.augment import downscale
from ..errors import UsageError
from ..inference.protocols import view_probabilities
from ..inference.views import eval_views
from . import finetune
from .console import eval_line
from .data import ALL_DATASETS, EvalSet, load_train_data
from .ghost import ghost_batch_norm
from .distributed import DistContext
from .optim import GroupPlan, group_plan
from .photos import photo_preprocess
from .recipes import TASKS, Recipe
from .replicas import CoreReplicas, replica_count
from .schedule import train_side
from .strategy import StepStrategy, WholeBatch
from .dirac import dirac_convs
from .whiten import whiten_stem

Batch = tuple[Any, ...]


class Task(Protocol):
    """The part of a run that depends on what is learnt. Called by the trainer in this order: :meth:`resolve`,
    :meth:`load_data`, :meth:`build_model`, :meth:`strategy`, then per step :meth:`batches` / :meth:`train_stats`,
    per log line :meth:`window_record`, per evaluation :meth:`evaluate`, and :meth:`summary_fields` at the end."""

    name: str
    selection_key: str  # the evaluation record's key that picks best.safetensors
    lower_is_better: bool
    interim_splits: tuple[str, ...]  # the splits scored at every evaluation; the last one scores holdout and test

    def resolve(self, opts: Any, recipe: Recipe, dist: DistContext) -> str: ...  # the network's name
    def default_out(self, model_name: str, recipe: Recipe) -> Path: ...
    def load_data(self, recipe: Recipe, device: torch.device, dist: DistContext, amp: torch.dtype | None) -> None: ...
    def build_model(self, recipe: Recipe, device: torch.device) -> nn.Module: ...
    def group_plan(self, model: nn.Module, recipe: Recipe) -> list[GroupPlan]: ...
    def strategy(self, net: nn.Module, model: nn.Module, scaler: torch.amp.GradScaler, recipe: Recipe,
                 device: torch.device, dist: DistContext) -> StepStrategy: ...
    def batches(self, iteration: int) -> Iterator[Batch]: ...
    def batches_per_epoch(self) -> int: ...
    def batch_len(self, batch: Batch) -> int: ...
    def train_stats(self, loss: Tensor, out: Any, batch: Batch) -> dict[str, Tensor]: ...
    def window_record(self, sums: dict[str, float]) -> dict[str, Any]: ...
    def eval_interval(self, recipe: Recipe) -> int: ...
    def eval_images(self, split: str) -> int: ...  # how many images scoring ``split`` ("holdout", "test") reads
    def evaluate(self, net: nn.Module, split: str, abandon: Callable[[], bool] | None) -> dict[str, Any] | None: ...
    def eval_line(self, record: dict[str, Any], total: int) -> str: ...
    def metadata(self) -> dict[str, Any]: ...
    def header(self) -> dict[str, Any]: ...
    def identity(self) -> dict[str, Any]: ...  # settings a resumed run must share (saved in the checkpoint)
    def announce(self, model_name: str, out: Path) -> str: ...
    def start_label(self) -> str: ...
    def notes(self, optimizer: torch.optim.Optimizer) -> list[str]: ...
    def skipped(self) -> list[Any]: ...
    def summary_fields(self) -> dict[str, Any]: ...
    def per_class(self, net: nn.Module) -> dict[str, Any]: ...  # per-class accuracy of the final network, or {}
    def close(self) -> None: ...


def make_task(name: str, opts: Any) -> Task:
    """The task called ``name`` (one of :data:`resnet.train.recipes.TASKS`) for the run ``opts``."""
    if name == "classification":
        return Classification(opts)
    if name in TASKS:
        from .dense import Dense

        return Dense(opts)
    raise UsageError(f"`task` must be one of {', '.join(TASKS)}, got {name!r}")


# -- classification ---------------------------------------------------------------------------------
def _log_probs(net: nn.Module, x: Tensor, *, flip: bool, shift: int, fill: float | Tensor, amp: torch.dtype | None,
               device: torch.device) -> Tensor:
    """Log of the softmax averaged over the test views of ``x`` (the log-softmax itself for one view): the views
    and the average of ``resnet eval``'s ``flip`` / ``shift`` protocols (:func:`~resnet.inference.views.eval_views`,
    :func:`~resnet.inference.protocols.view_probabilities`)."""
    views = eval_views(x, flip=flip, shift=shift, fill=fill)
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        if len(views) == 1:
            return net(x).float().log_softmax(1)
        probs = view_probabilities(net, views)
    return probs.clamp_min(1e-12).log()


@torch.no_grad()
def evaluate(net: nn.Module, evalset: EvalSet, *, flip: bool, amp: torch.dtype | None, device: torch.device,
             dist: DistContext, cores: CoreReplicas | None = None, shift: int = 0,
             fill: Tensor | None = None, abandon: Callable[[], bool] | None = None) -> tuple[float, float] | None:
    """Top-1 error (%) and mean cross-entropy over the whole set (every rank's share summed).

    ``abandon`` is asked before every batch; when it says so the evaluation stops and returns ``None``
    (Ctrl-C: the run stops within a batch instead of after the whole set).

    ``flip`` / ``shift`` average the softmax over the mirror and over copies moved ``shift`` pixels
    diagonally both ways (:func:`resnet.inference.views.eval_views`), the border set to ``fill`` (per channel:
    the normalised value of a black pixel, which is what zero padding gives in training). With ``cores``,
    each batch is split over the CPU cores, one thread per slice (eval mode is stateless).
    """
    was_training = net.training
    net.eval()
    fill_value: float | Tensor = 0.0 if fill is None else fill.to(device).view(-1, 1, 1)

    def log_probs_of(x: Tensor) -> Tensor:
        return _log_probs(net, x, flip=flip, shift=shift, fill=fill_value, amp=amp, device=device)

    totals = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in evalset:
        if abandon is not None and abandon():
            net.train(was_training)
            return None
        log_probs = cores.map(log_probs_of, x) if cores is not None else log_probs_of(x)
        totals[0] += (log_probs.argmax(1) != y).sum()
        totals[1] += F.nll_loss(log_probs, y, reduction="sum")
        totals[2] += len(y)
    net.train(was_training)
    dist.all_reduce_sum(totals)
    wrong, loss, n = totals.tolist()
    return 100.0 * wrong / max(n, 1), loss / max(n, 1)


def default_recipe(data: str, task: str = "classification") -> str:
    if task != "classification":
        return task
    return {"digits": "digits", "imagenet": "imagenet-paper"}.get(data, "cifar-paper")


def default_model(data: str, task: str = "classification") -> str:
    if task != "classification":
        return "resnet18"  # the backbone
    return "resnet50" if data == "imagenet" else "resnet20"


class Classification:
    """Image classification on the data sets of :mod:`resnet.train.data`, from scratch or fine-tuned (``init``)."""

    name = "classification"
    selection_key, lower_is_better = "holdout_error", True
    interim_splits = ("holdout", "test")

    def __init__(self, opts: Any) -> None:
        if opts.data not in ALL_DATASETS:
            raise UsageError(f"unknown data set {opts.data!r}; choose one of {', '.join(ALL_DATASETS)}")
        self.opts = opts
        self.cores: CoreReplicas | None = None
        self.replicas = 1
        self.side = 0  # with progressive resizing: the side of the last training batch

    def resolve(self, opts: Any, recipe: Recipe, dist: DistContext) -> str:
        self.init = finetune.resolve_init_ranked(opts.init, opts.model, dist) if opts.init else None
        self.model_name: str = opts.model or (self.init.model_name if self.init is not None else
                                              recipe.model or default_model(opts.data))
        return self.model_name

    def default_out(self, model_name: str, recipe: Recipe) -> Path:
        return Path("runs") / f"{model_name}-{self.opts.data}"

    def load_data(self, recipe: Recipe, device: torch.device, dist: DistContext, amp: torch.dtype | None) -> None:
        opts = self.opts
        self.recipe, self.device, self.dist, self.amp = recipe, device, dist, amp
        photo_pre = photo_preprocess(recipe, self.init.preprocess if self.init else None, "image_size" in opts.overrides) \
            if recipe.augment == "rrc" else None
        self.data = load_train_data(opts.data, opts.data_dir, recipe, seed=opts.seed, device=device, dist=dist,
                                    dtype=torch.float32, strict=opts.strict, preprocess=photo_pre)
        self.black = -torch.tensor(self.data.mean) / torch.tensor(self.data.std)  # a zero (padding) pixel, normalised

    def build_model(self, recipe: Recipe, device: torch.device) -> nn.Module:
        from ..models import create_model

        data = self.data
        try:
            model = create_model(self.model_name, num_classes=data.num_classes, in_chans=data.in_chans,
                                 **({"zero_init_residual": True} if recipe.zero_init_residual else {}),
                                 **({"activation": recipe.activation} if recipe.activation else {}),
                                 **self.opts.model_overrides)
        except ValueError as err:
            raise UsageError(str(err)) from None
        depth = model.spec.depth if hasattr(model.spec, "depth") else None
        self.depth = depth if isinstance(depth, int) else None
        self.init_note = finetune.apply_init(model, self.init, data.classes) if self.init is not None else None
        if recipe.whiten_stem and self.init is not None:
            raise UsageError("whiten_stem starts the first layer afresh, which would undo the pretrained weights "
                             "of init; set whiten_stem=0")
        if recipe.dirac_init:
            if self.init is not None:
                raise UsageError("dirac_init starts every convolution afresh, which would undo the pretrained weights "
                                 "of init; set dirac_init=false")
            dirac_convs(model)
        self.whiten_note = whiten_stem(model, data.stream(0, 0), recipe.whiten_stem) if recipe.whiten_stem else None
        self.frozen = finetune.freeze(model, recipe.freeze)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                if recipe.bn_scale_frozen and m.weight is not None:
                    m.weight.requires_grad_(False)
                if recipe.bn_momentum:
                    m.momentum = recipe.bn_momentum
        if recipe.ghost_batch:
            ghost_batch_norm(model, recipe.ghost_batch)
        model.to(device)
        if recipe.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def group_plan(self, model: nn.Module, recipe: Recipe) -> list[GroupPlan]:
        fine_tune = self.init is not None or self.frozen > 0
        return group_plan(model, recipe, pretrained=self.init is not None, split_head=fine_tune)

    def strategy(self, net: nn.Module, model: nn.Module, scaler: torch.amp.GradScaler, recipe: Recipe,
                 device: torch.device, dist: DistContext) -> StepStrategy:
        self.replicas = replica_count(recipe.core_replicas, recipe.batch_size, device=device, distributed=dist.enabled,
                                      compiled=recipe.compile)
        self.cores = CoreReplicas(model, self.replicas) if self.replicas > 1 else None
        return self.cores if self.cores is not None else WholeBatch(net, scaler)

    def batches(self, iteration: int) -> Iterator[Batch]:
        """The training batches from ``iteration`` on, shrunk to :func:`train_side` where the recipe resizes."""
        epoch, batch = divmod(iteration, self.data.batches_per_epoch)
        full, step = self.data.image_size, iteration
        if self.recipe.resize_from >= full:
            raise UsageError(f"resize_from {self.recipe.resize_from} is not smaller than the {full}-pixel training "
                             f"images; set it below {full} (or 0 for no resizing)")
        while True:
            for x, y in self.data.stream(epoch, batch):
                if self.recipe.resize_from:
                    self.side = train_side(self.recipe, step, full)
                    x = downscale(x, self.side)
                yield x, y
                step += 1
            epoch, batch = epoch + 1, 0

    def batches_per_epoch(self) -> int:
        return self.data.batches_per_epoch

    def batch_len(self, batch: Batch) -> int:
        return len(batch[1])

    def train_stats(self, loss: Tensor, out: Any, batch: Batch) -> dict[str, Tensor]:
        y = batch[1]
        n = torch.tensor(float(len(y)), dtype=torch.float64, device=self.device)
        return {"loss": loss.detach().double() * n, "wrong": (out.detach().argmax(1) != y).sum().double(), "n": n}

    def window_record(self, sums: dict[str, float]) -> dict[str, Any]:
        record = {"loss": sums["loss"] / sums["n"], "error": 100.0 * sums["wrong"] / sums["n"]}
        return {**record, "side": self.side} if self.recipe.resize_from else record

    def eval_interval(self, recipe: Recipe) -> int:
        return recipe.evaluation_interval_for(sum(s.size for s in (self.data.holdout, self.data.test) if s is not None))

    def eval_images(self, split: str) -> int:
        evalset = self.data.holdout if split == "holdout" else self.data.test
        return 0 if evalset is None else evalset.size

    def evaluate(self, net: nn.Module, split: str, abandon: Callable[[], bool] | None) -> dict[str, Any] | None:
        evalset = self.data.holdout if split == "holdout" else self.data.test
        if evalset is None:
            return {f"{split}_error": None, f"{split}_loss": None}
        scores = evaluate(net, evalset, flip=self.recipe.test_flip, amp=self.amp, device=self.device, dist=self.dist,
                          cores=self.cores, shift=self.recipe.test_shift, fill=self.black, abandon=abandon)
        if scores is None:
            return None
        return {f"{split}_error": scores[0], f"{split}_loss": scores[1]}

    def eval_line(self, record: dict[str, Any], total: int) -> str:
        return eval_line(record, total)

    def metadata(self) -> dict[str, Any]:
        opts, data, recipe = self.opts, self.data, self.recipe
        return {"classes": data.classes, "preprocess": data.preprocess.as_dict(), "dataset": data.name,
                "data_dir": str(Path(opts.data_dir).expanduser().resolve()) if opts.data_dir else None,
                "recipe": recipe.name, "recipe_version": recipe.version, "seed": opts.seed,
                **({"init": self.init.label} if self.init is not None else {})}

    def header(self) -> dict[str, Any]:
        return {"core_replicas": self.replicas}

    def identity(self) -> dict[str, Any]:
        return {}

    def announce(self, model_name: str, out: Path) -> str:
        data = self.data
        return (f"resnet train: {model_name} on {self.opts.data} ({data.train_size} training images, {data.num_classes} "
                f"classes, {data.image_size}px) -> {out}")

    def start_label(self) -> str:
        return "from " + self.init.label if self.init else "from scratch"

    def notes(self, optimizer: torch.optim.Optimizer) -> list[str]:
        notes = list(finetune.notes(self.init_note, self.frozen, self.recipe, optimizer))
        return notes + ([self.whiten_note] if self.whiten_note else [])

    def skipped(self) -> list[Any]:
        return self.data.skipped() if self.data.skipped else []

    def per_class(self, net: nn.Module) -> dict[str, Any]:
        """Per-class accuracy (%) of ``net`` on the test set (else the held-out one), scored as :func:`evaluate`
        scores it (the recipe's views)."""
        from ..inference.per_class import confusion_of, per_class_dict

        evalset = self.data.test or self.data.holdout
        if evalset is None:
            return {}
        fill = 0.0 if self.black is None else self.black.to(self.device).view(-1, 1, 1)
        recipe = self.recipe
        confusion = confusion_of(lambda x: _log_probs(net, x, flip=recipe.test_flip, shift=recipe.test_shift, fill=fill,
                                                      amp=self.amp, device=self.device),
                                 evalset, len(self.data.classes),
                                 reduce=lambda c: c.copy_(self.dist.all_reduce_sum(c.to(self.device)).cpu()))
        return {"per_class_accuracy": per_class_dict(confusion, self.data.classes), "per_class_split": evalset.name}

    def summary_fields(self) -> dict[str, Any]:
        return {"train_images": self.data.train_size,
                **({"init": self.init.label, "init_note": self.init_note} if self.init is not None else {})}

    def close(self) -> None:
        if self.cores is not None:
            self.cores.close()
