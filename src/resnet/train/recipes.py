"""Named, versioned training recipes; every field can be overridden (``overrides``: KEY=VALUE).

A recipe is plain data. It is printed in full at the start of a run and saved as ``recipe.json`` beside
the checkpoints, so a result always names exactly how it was made.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ..errors import UsageError
from ..models.data_config import IMAGENET_DATA_CONFIG
from ..models.specs import ACTIVATIONS

SCHEDULES = ("step", "onecycle", "linear", "plateau", "cosine", "warmup-cosine")
TASKS = ("classification", "detection", "segmentation")  # what a recipe trains (train/tasks.py)
AUGMENTS = ("crop-flip", "flip", "none", "imagenet", "rrc")  # rrc: RandomResizedCrop + flip (photo folders)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Recipe:
    name: str
    version: int
    description: str
    task: str = "classification"  # classification, detection or segmentation (train/tasks.py)
    model: str = ""  # the network the recipe was made for: a run that names none trains it ("": the data's default)
    batch_size: int = 128  # total over all processes
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    # the paper decays BN and bias parameters too; modern recipes often do not
    decay_bn_and_bias: bool = True
    schedule: str = "step"
    iterations: int = 64_000
    milestones: tuple[int, ...] = (32_000, 48_000)
    gamma: float = 0.1
    # "step" with depth >= warmup_min_depth: lr * warmup_factor until the training error falls below
    # warmup_until_error (%), then lr (the paper's ResNet-110 / 1202 warm-up)
    warmup_min_depth: int = 110
    warmup_factor: float = 0.1
    warmup_until_error: float = 80.0
    warmup_max_iterations: int = 400
    # "onecycle": linear ramp from lr * warmup_factor to lr over pct_start of the run, then down to 0
    pct_start: float = 0.15
    # "plateau": divide by 1/gamma when the hold-out error has not improved for `patience` evaluations
    patience: int = 3
    label_smoothing: float = 0.0
    # > 0: Lookahead (Zhang et al. 2019; timm's wrapper): every lookahead_k steps the weights move back to the slow
    # weights plus lookahead_alpha of the way to where SGD took them (measured: docs/results/train/recipe-fields.md)
    lookahead_k: int = 0
    lookahead_alpha: float = 0.5
    ema_decay: float = 0.0  # exponential moving average of the weights (and batch-norm statistics); 0 = off
    # the average moves every ema_every steps, by a decay of ema_decay * (step / iterations) ** ema_ramp (0: always
    # ema_decay); with ema_copy_back the training weights restart from the average after each move (Lookahead's
    # pull-back with a rising decay, as hlb-cifar10 and airbench94 do: ema_every=5, ema_decay=0.95**5, ema_ramp=3)
    ema_every: int = 1
    ema_ramp: float = 0.0
    ema_copy_back: bool = False
    holdout: int = 5_000  # training images kept aside for model selection (the paper's 45k/5k)
    eval_every: int = 0  # iterations between evaluations; 0 = a tenth of the run
    log_every: int = 50
    test_flip: bool = False  # average the test image and its mirror at evaluation
    # > 0: also average each view moved diagonally by this many pixels both ways, zero-filled (the
    # ``shift`` protocol of resnet eval: 6 views with test_flip, 3 without)
    test_shift: int = 0
    augment: str = "crop-flip"
    # "crop-flip": mirror each image in alternate epochs (a fair coin picks its first), not by a coin each epoch
    # (Jordan 2024; measured: docs/results/train/recipe-fields.md)
    alternate_flip: bool = False
    padding: int = 4
    # > 0: start the first convolution as a whitening of this many training images' patches (train/whiten.py;
    # measured: docs/results/train/recipe-fields.md)
    whiten_stem: int = 0
    # > 0: progressive resizing (FFCV's lever for ResNet-50): the training images start shrunk to this side in
    # pixels and grow linearly, 4 px at a time, to their full size at resize_until of the run; evaluation always
    # sees the full size (train/schedule.py; measured: docs/results/train/recipe-fields.md)
    resize_from: int = 0
    resize_until: float = 0.75
    image_size: int = IMAGENET_DATA_CONFIG.input_size  # crop for ImageNet-layout data
    precision: str = "auto"  # auto: bf16 where the hardware computes it natively, else fp32
    channels_last: bool = True
    compile: bool = False
    # CPU data parallelism inside one process (train/replicas.py): 0 = one replica per core, 1 = off
    core_replicas: int = 0
    compile_mode: str = "default"  # torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune
    sync_bn: bool = False
    zero_init_residual: bool = False
    activation: str = ""  # the network's nonlinearity ("": its own; "gelu" / "celu" for "pool" networks)
    # every convolution starts with its first min(in, out) filters passing their input channel through unchanged
    # (torch.nn.init.dirac_; Jordan 2024's identity initialisation), the rest as the network initialises them
    dirac_init: bool = False
    # > 0: the momentum of every batch norm's running statistics (PyTorch's convention: the new batch's weight)
    bn_momentum: float = 0.0
    # batch-norm scales stay at 1 and only their shifts train (Page 2019's ResNet-9; the shift still decays)
    bn_scale_frozen: bool = False
    # > 0: batch norm normalises each group of this many images of a batch on its own in training (ghost batch
    # norm, Hoffer et al. 2017; train/ghost.py); 0: the whole batch a core replica sees
    ghost_batch: int = 0
    # != 1: 1-d tensors (batch-norm shifts and scales, biases) learn at lr * this with weight_decay / this, so their
    # decay per step is unchanged (Page 2019 and Jordan 2024: 64 for the batch-norm shifts of ResNet-9 / airbench)
    bias_lr_scale: float = 1.0
    grad_clip: float = 0.0
    workers: int = 4  # decoding processes for ImageNet-layout data
    # fine-tuning (train/finetune.py): parts kept as initialised ("stem,layer1"; "all" = linear probe), their
    # batch norm frozen too; the pretrained backbone learns at lr * backbone_lr_scale, the new head at lr
    freeze: str = ""
    backbone_lr_scale: float = 1.0
    min_crop_scale: float = 0.08  # "rrc": smallest area fraction of a random crop (torchvision's default 0.08)
    # > 0: an evaluation that falls due runs only when it and the last one (which always runs), at their expected
    # cost, keep evaluating within this share of the run's expected wall time; 0: every evaluation runs
    eval_share: float = 0.0
    # "warmup-cosine": linear warm-up from lr * warmup_factor over this many iterations, then half a cosine down to 0
    warmup: int = 0
    # detection / segmentation (train/dense.py): torchvision's head on our backbone
    head: str = ""  # maskrcnn, fasterrcnn, retinanet (detection); deeplabv3, fcn (segmentation)
    test_images: int = 50  # photos kept for testing: a fixed split, the same for every run
    output_stride: int = 16  # segmentation heads: 8 or 16 (dilated last stages)
    trainable_layers: int = 3  # stages trained from layer4 down, with pretrained weights (from scratch: all)
    hflip: bool = True  # mirror each training photo by a coin
    # R-CNN heads, sized down from torchvision's (2000/1000 proposals, 512 RoIs, 100 detections) for a CPU
    proposals: int = 300  # RPN proposals kept after NMS, in training and at test
    rois_per_image: int = 128  # RoIs sampled per photo for the box / mask losses
    detections_per_image: int = 20
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "Recipe":
        problems = []
        if self.batch_size < 1:
            problems.append(f"batch_size must be at least 1, got {self.batch_size}")
        if self.lr <= 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.core_replicas < 0:
            problems.append(f"core_replicas must be 0 (one per core), 1 (off) or more, got {self.core_replicas}")
        if self.iterations < 1:
            problems.append(f"iterations must be at least 1, got {self.iterations}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            problems.append(f"milestones must be increasing positive iterations, got {list(self.milestones)}")
        if not 0 < self.gamma <= 1:
            problems.append(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 1 <= self.ema_every <= max(1, self.iterations) or self.ema_ramp < 0:
            problems.append(f"ema_every must be in [1, iterations] (the average first copies the weights at step "
                            f"ema_every) and ema_ramp >= 0, got {self.ema_every} and {self.ema_ramp}")
        if self.ema_copy_back and self.lookahead_k:
            problems.append("ema_copy_back and lookahead_k both pull the weights back: set one")
        if self.activation and self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {', '.join(ACTIVATIONS)} ('' for the network's own), got "
                            f"{self.activation!r}")
        if not 0 <= self.bn_momentum <= 1:
            problems.append(f"bn_momentum must be in (0, 1] (0: the network's own), got {self.bn_momentum}")
        if self.holdout < 0:
            problems.append(f"holdout must be >= 0, got {self.holdout}")
        if self.eval_every < 0 or self.log_every < 1:
            problems.append("eval_every must be >= 0 and log_every >= 1")
        if self.augment not in AUGMENTS:
            problems.append(f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        if self.alternate_flip and self.augment != "crop-flip":
            problems.append(f"alternate_flip needs augment crop-flip, got augment {self.augment!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0 < self.pct_start < 1:
            problems.append(f"pct_start must be in (0, 1), got {self.pct_start}")
        if self.lookahead_k < 0 or not 0 < self.lookahead_alpha <= 1:
            problems.append(f"lookahead_k must be >= 0 (0 = off) and lookahead_alpha in (0, 1], got "
                            f"{self.lookahead_k} and {self.lookahead_alpha}")
        if self.whiten_stem < 0:
            problems.append(f"whiten_stem must be 0 (off) or a number of training images, got {self.whiten_stem}")
        if self.resize_from < 0 or not 0 < self.resize_until <= 1:
            problems.append(f"resize_from must be 0 (off) or a side in pixels, and resize_until in (0, 1], got "
                            f"{self.resize_from} and {self.resize_until}")
        if self.resize_from and self.augment == "rrc":
            problems.append("resize_from shrinks the CIFAR-style crops; augment rrc already picks its own size: set one")
        if self.test_shift < 0:
            problems.append(f"test_shift must be >= 0 pixels, got {self.test_shift}")
        if not 0 < self.backbone_lr_scale <= 10:
            problems.append(f"backbone_lr_scale must be in (0, 10], got {self.backbone_lr_scale}")
        if not 0 < self.min_crop_scale <= 1:
            problems.append(f"min_crop_scale must be in (0, 1], got {self.min_crop_scale}")
        bad = [p for p in self.freeze.split(",") if p.strip() and not re.fullmatch(r"stem|layer\d+|all", p.strip())]
        if bad:
            problems.append(f"freeze takes a comma-separated list of stem, layer1, layer2, ... or all, got {', '.join(bad)}")
        if self.padding < 0 or self.workers < 0 or self.patience < 1 or self.grad_clip < 0 or self.ghost_batch < 0:
            problems.append("padding, workers, grad_clip and ghost_batch must be >= 0 and patience >= 1")
        if not self.bias_lr_scale > 0:
            problems.append(f"bias_lr_scale must be positive, got {self.bias_lr_scale}")
        if self.ghost_batch and self.sync_bn:
            problems.append("ghost_batch normalises groups of a batch, sync_bn the batch of every process: set one")
        problems += self._dense_problems()
        if problems:
            raise UsageError(f"recipe {self.name}: " + "; ".join(problems))
        return self

    def _dense_problems(self) -> list[str]:
        problems = []
        if self.task not in TASKS:
            problems.append(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        elif self.task != "classification" and not self.head:
            problems.append(f"task {self.task} needs a head")
        for key in ("image_size", "proposals", "rois_per_image", "detections_per_image"):
            if getattr(self, key) < 1:
                problems.append(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.warmup < 0 or self.test_images < 0 or not 0 <= self.eval_share < 1:
            problems.append("warmup and test_images must be >= 0 and eval_share in [0, 1)")
        if self.output_stride not in (8, 16, 32):
            problems.append(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        return problems

    @property
    def evaluation_interval(self) -> int:
        """Iterations between evaluations as asked: ``eval_every``, else a tenth of the run."""
        return self.eval_every or max(1, self.iterations // 10)

    def evaluation_interval_for(self, eval_images: int) -> int:
        """Iterations between evaluations of ``eval_images`` images. ``eval_every`` when set; else a tenth
        of the run, but never so often that evaluating (about a third of a training image's cost per image)
        outlasts the training between two evaluations: a 60-iteration run of a CIFAR recipe (15,000
        hold-out and test images) evaluates at iteration 40 and at the end, not every 6 iterations."""
        if self.eval_every:
            return self.eval_every
        enough = -(-eval_images // (3 * self.batch_size))
        return min(self.iterations, max(self.evaluation_interval, enough))

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    def describe(self) -> str:
        """Every field that acts on this recipe's task, one per line."""
        unused = CLASSIFICATION_ONLY if self.task != "classification" else DENSE_ONLY
        return "\n".join(f"  {k:<22} {json.dumps(v)}" for k, v in self.as_dict().items() if k not in unused)


# Fields that only one kind of task reads (the others are left out of :meth:`Recipe.describe`).
DENSE_ONLY = frozenset({"head", "test_images", "output_stride", "trainable_layers", "hflip", "proposals", "rois_per_image",
                        "detections_per_image"})
CLASSIFICATION_ONLY = frozenset({
    "nesterov", "decay_bn_and_bias", "milestones", "gamma", "warmup_min_depth", "warmup_until_error", "warmup_max_iterations",
    "pct_start", "patience", "label_smoothing", "lookahead_k", "lookahead_alpha", "test_flip", "test_shift", "augment",
    "alternate_flip", "padding", "whiten_stem", "resize_from", "resize_until", "precision", "channels_last", "compile", "core_replicas", "compile_mode",
    "sync_bn", "zero_init_residual", "activation", "dirac_init", "bn_momentum", "bn_scale_frozen", "ghost_batch", "model",
    "workers", "freeze", "backbone_lr_scale", "min_crop_scale"})


# What the dense recipes share (version 1 selected its best checkpoint on the test photos).
_DENSE_COMMON: dict[str, Any] = dict(
    image_size=160, batch_size=4, lr=0.02, momentum=0.9, weight_decay=1e-4, iterations=200, milestones=(),
    schedule="warmup-cosine", warmup=50, warmup_factor=0.001, grad_clip=10.0, log_every=10, holdout=20, eval_share=0.2,
    precision="fp32", channels_last=False, core_replicas=1, workers=0, augment="none",
)

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "cifar-paper", 1,
            "He et al. 2015, Sec. 4.2: batch 128, SGD 0.9, wd 1e-4, lr 0.1 /10 at 32k and 48k, stop at 64k; "
            "45k/5k split; depth >= 110 warms up at lr 0.01 until training error < 80%",
        ),
        Recipe(
            "imagenet-paper", 1,
            "He et al. 2015, Sec. 3.4: batch 256, SGD 0.9, wd 1e-4, lr 0.1 /10 when the error plateaus, up to 60e4 "
            "iterations; scale augmentation [256, 480], 224 crops, flip, PCA lighting",
            batch_size=256, schedule="plateau", iterations=600_000, milestones=(), holdout=10_000,
            eval_every=5_000, augment="imagenet", log_every=100,
        ),
        Recipe(
            "cifar-fast", 6,
            "ours, for time to accuracy: 31,250 iterations of batch 32 (20 epochs of all 50k images), the training "
            "images growing from 16 to 32 px over the first three quarters of the run (progressive resizing), "
            "one-cycle lr (peak 0.05), Nesterov, label smoothing 0.1, wd 5e-4 without BN/bias decay, weight EMA, crops "
            "moved up to 2 px, mirror and ±1 px shifts at test time",
            # how each version scored and why its fields are what they are: docs/results/train/recipe-fields.md
            batch_size=32, lr=0.05, nesterov=True, weight_decay=5e-4, decay_bn_and_bias=False, schedule="onecycle",
            iterations=31_250, milestones=(), label_smoothing=0.1, ema_decay=0.999, holdout=0, test_flip=True,
            test_shift=1, eval_every=31_250, pct_start=0.15, warmup_factor=0.05, padding=2, core_replicas=1,
            resize_from=16, resize_until=0.75,
        ),
        Recipe(
            "cifar94", 5,
            "ours, after Page 2019 (ResNet-9 to 94 % in 10 epochs on one GPU) and Jordan 2024 (airbench94): ResNet-9 "
            "at airbench94's widths pooling before batch norm (resnet9_lite), identity-initialised convolutions, "
            "2,744 iterations of batch 256 (14 epochs), lr linear up to 0.3 over a fifth of the run then down to 0, "
            "batch-norm shifts at 64x the lr and 1/64 the weight decay, Nesterov, wd 5e-4, label smoothing 0.2, "
            "whitened stem, frozen batch-norm scales, batch norm over each half of the batch (two core replicas), "
            "every 10 steps the weights pulled back to their average (decay rising as the cube of progress to 0.881), "
            "alternating flips, mirror and ±1 px shifts at test time",
            # provenance of each field, and what it scored here: docs/results/train/recipe-fields.md
            model="resnet9_lite", batch_size=256, lr=0.3, nesterov=True, weight_decay=5e-4, schedule="onecycle",
            iterations=2744, milestones=(), pct_start=0.2, warmup_factor=0.0, label_smoothing=0.2, ema_decay=0.881,
            ema_every=10, ema_ramp=3.0, ema_copy_back=True, dirac_init=True, holdout=0, eval_every=2744, test_flip=True,
            test_shift=1, alternate_flip=True, padding=4, whiten_stem=5000, bn_scale_frozen=True, bias_lr_scale=64.0,
            core_replicas=2, log_every=20,
        ),
        Recipe(
            "finetune", 1,
            "ours, for pretrained weights (`init` NAME[:TAG] or PATH) on a folder of photos (`data` folder): "
            "1,000 iterations of batch 64, cosine lr 0.01 after a 10% linear warm-up, backbone at 0.1x the head's lr, "
            "Nesterov, wd 1e-4 without BN/bias decay, label smoothing 0.1, RandomResizedCrop (area >= 25%) + flip",
            batch_size=64, lr=0.01, nesterov=True, weight_decay=1e-4, decay_bn_and_bias=False, schedule="cosine",
            iterations=1_000, milestones=(), pct_start=0.1, warmup_factor=0.1, label_smoothing=0.1, holdout=0,
            eval_every=0, log_every=20, augment="rrc", backbone_lr_scale=0.1, min_crop_scale=0.25, workers=0,
        ),
        Recipe(
            "digits", 1,
            "embedded scikit-learn digits (8x8 upsampled to 32x32): short one-cycle run for demos and tests",
            batch_size=64, lr=0.1, nesterov=True, weight_decay=5e-4, decay_bn_and_bias=False, schedule="onecycle",
            iterations=600, milestones=(), holdout=150, eval_every=100, log_every=20, augment="crop-flip",
            padding=2, label_smoothing=0.0, pct_start=0.2, warmup_factor=0.1,
        ),
        Recipe(
            "detection", 2,
            "Mask R-CNN (torchvision) on our FPN backbone, sized for a CPU: 160 px photos, 300 proposals, 200 iterations "
            "of 4, SGD lr 0.02 with 50 warm-up iterations and cosine decay; the best checkpoint chosen on 20 held-out "
            "training photos, evaluations kept under a fifth of the run",
            task="detection", head="maskrcnn", **_DENSE_COMMON,
        ),
        Recipe(
            "segmentation", 2,
            "DeepLabV3 (torchvision) on our dilated backbone (output stride 16), pedestrian vs background, sized for a "
            "CPU: 128 px (square training crops), 800 iterations of 4, SGD lr 0.02 with 50 warm-up iterations and cosine "
            "decay; the best checkpoint chosen on 20 held-out training photos, evaluations kept under a fifth of the run",
            task="segmentation", head="deeplabv3", **{**_DENSE_COMMON, "image_size": 128, "iterations": 800},
        ),
    )
}


# Earlier versions of a recipe, as the fields that differ from the current one: ``--recipe cifar-fast@3``
# trains exactly as version 3 did (and resumes a run made with it).
EARLIER_VERSIONS: dict[tuple[str, int], dict[str, Any]] = {
    # v1 of the dense recipes trained on every non-test photo and picked its best checkpoint on the test photos;
    # @1 trains the same weights, and picks none (no hold-out), so the test photos stay unseen until the end.
    **{(name, 1): dict(holdout=0, eval_share=0.0, description=f"{name} v2 trained on all 120 non-test photos, "
                       "scored on the test photos at a quarter of the run, every time")
       for name in ("detection", "segmentation")},
    ("cifar94", 4): dict(
        description="ours, after Page 2019 (ResNet-9 to 94 % in 10 epochs on one GPU) and Jordan 2024 (airbench94): "
                    "ResNet-9 at airbench94's widths pooling before batch norm (resnet9_lite), identity-initialised "
                    "convolutions, 2,744 iterations of batch 256 (14 epochs), lr linear up to 0.2 over a fifth of the "
                    "run then down to 0, batch-norm shifts at 64x the lr and 1/64 the weight decay, Nesterov, wd 5e-4, "
                    "label smoothing 0.2, whitened stem, frozen batch-norm scales, batch norm over each half of the batch "
                    "(two core replicas), every 10 steps the weights pulled back to their average (decay rising as the "
                    "cube of progress to 0.881), alternating flips, mirror and ±1 px shifts at test time",
        lr=0.2,
    ),
    ("cifar94", 3): dict(
        description="ours, after Page 2019 (ResNet-9 to 94 % in 10 epochs on one GPU) and Jordan 2024 (airbench94): "
                    "ResNet-9 at airbench94's widths pooling before batch norm (resnet9_lite), identity-initialised "
                    "convolutions, 1,372 iterations of batch 512 (14 epochs), lr linear up to 0.4 over a fifth of the "
                    "run then down to 0, batch-norm shifts at 64x the lr and 1/64 the weight decay, Nesterov, wd 5e-4, "
                    "label smoothing 0.2, whitened stem, frozen batch-norm scales, batch norm over each half of the batch "
                    "(two core replicas), every 5 steps the weights pulled back to their average (decay rising as the "
                    "cube of progress to 0.881), alternating flips, mirror and ±1 px shifts at test time",
        batch_size=512, lr=0.4, iterations=1372, eval_every=1372, ema_every=5,
    ),
    ("cifar94", 2): dict(
        description="ours, after Page 2019 and Jordan 2024: ResNet-9 at airbench94's widths pooling before batch norm "
                    "(resnet9_lite), 1,372 iterations of batch 512 (14 epochs), lr linear up to 0.4 over a fifth of the "
                    "run then down to 0, batch-norm shifts at 64x the lr and 1/64 the weight decay, Nesterov, wd 5e-4, "
                    "label smoothing 0.2, whitened stem, frozen batch-norm scales, batch norm over each half of the batch "
                    "(two core replicas), weight EMA 0.99, alternating flips, mirror and ±1 px shifts at test time",
        batch_size=512, lr=0.4, iterations=1372, eval_every=1372, ema_decay=0.99, ema_every=1, ema_ramp=0.0,
        ema_copy_back=False, dirac_init=False,
    ),
    ("cifar94", 1): dict(
        description="ours, after Page 2019 (ResNet-9 to 94 % in 10 epochs on one GPU): ResNet-9, 980 iterations of "
                    "batch 512 (10 epochs), lr linear up to 0.4 over 2 epochs then down to 0, Nesterov, wd 5e-4, label "
                    "smoothing 0.2, whitened stem, frozen batch-norm scales, batch norm over each half of the batch (two "
                    "core replicas), weight EMA, alternating flips, mirror and ±1 px shifts at test time",
        model="resnet9", batch_size=512, lr=0.4, iterations=980, eval_every=980, bias_lr_scale=1.0, ema_decay=0.99,
        ema_every=1, ema_ramp=0.0, ema_copy_back=False, dirac_init=False,
    ),
    ("cifar-fast", 5): dict(
        description="ours, for time to accuracy: 34,375 iterations of batch 32 (22 epochs of all 50k images), the "
                    "training images growing from 16 to 32 px over the first three quarters of the run (progressive "
                    "resizing), one-cycle lr (peak 0.05), Nesterov, label smoothing 0.1, wd 5e-4 without BN/bias decay, "
                    "weight EMA, crops moved up to 2 px, mirror and ±1 px shifts at test time",
        iterations=34_375, eval_every=34_375,
    ),
    ("cifar-fast", 4): dict(
        description="ours, for time to accuracy: 34,375 iterations of batch 32 (22 epochs of all 50k images), one-cycle "
                    "lr (peak 0.05), Nesterov, label smoothing 0.1, wd 5e-4 without BN/bias decay, weight EMA, crops "
                    "moved up to 2 px, mirror and ±1 px shifts at test time",
        iterations=34_375, eval_every=34_375, resize_from=0,
    ),
    ("cifar-fast", 3): dict(
        description="ours, for time to accuracy: 10,500 iterations (27 epochs of all 50k images), one-cycle lr (peak "
                    "0.2), Nesterov, label smoothing 0.1, wd 5e-4 without BN/bias decay, weight EMA, mirror and ±2 px "
                    "shifts at test time",
        batch_size=128, lr=0.2, iterations=10_500, eval_every=10_500, padding=4, test_shift=2, core_replicas=0,
        resize_from=0,
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe ``name``, or ``name@N`` for its version N (the current one, or one of :data:`EARLIER_VERSIONS`)."""
    base_name, at, version = name.partition("@")
    try:
        base = RECIPES[base_name]
    except KeyError:
        raise UsageError(f"unknown recipe {base_name!r}; choose one of {', '.join(RECIPES)}") from None
    if not at or version == str(base.version):
        return base
    versions = sorted([v for n, v in EARLIER_VERSIONS if n == base_name] + [base.version])
    fields_then = EARLIER_VERSIONS.get((base_name, int(version))) if version.isdigit() else None
    if fields_then is None:
        raise UsageError(f"recipe {base_name} has no version {version!r}; versions: {', '.join(map(str, versions))}")
    return replace(base, version=int(version), **fields_then)


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["lr=0.05", "milestones=100,200"]`` → ``{"lr": "0.05", "milestones": "100,200"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"`overrides` expects KEY=VALUE, got {item!r} (e.g. `overrides` lr=0.05)")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


_FIELD_TYPES: dict[str, Any] = {name: kind for name, kind in typing.get_type_hints(Recipe).items()}  # in field order


def _coerce(key: str, raw: Any) -> Any:
    return coerce_field(_FIELD_TYPES[key], key, raw)


def coerce_field(kind: Any, key: str, raw: Any) -> Any:
    """``raw`` (an override string or a JSON value) as a value of the field type ``kind`` (a type as
    :func:`typing.get_type_hints` gives it: ``int``, ``float | None``, ``tuple[int, ...]``...)."""
    value = _parsed(raw)
    args = typing.get_args(kind)
    if type(None) in args:  # X | None: "none" / "null" / null clears it
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        kind = next(a for a in args if a is not type(None)) if len(args) == 2 else kind
    try:
        return _as_type(kind, value)
    except (TypeError, ValueError, OverflowError):
        pass
    raise UsageError(f"recipe field {key} takes {_type_words(kind)}, got {raw!r}")


def _parsed(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _as_type(kind: Any, value: Any) -> Any:
    """``value`` as a ``kind``, or ``ValueError`` / ``TypeError``."""
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "false", "no", "off"):
            return value.lower() in ("true", "yes", "on")
        if isinstance(value, (bool, int)) and value in (0, 1):
            return bool(value)
        raise ValueError
    if kind is int:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        return int(float(value))
    if kind is float:
        if isinstance(value, bool) or not math.isfinite(float(value)):
            raise ValueError  # nan / inf would only end in a diverged run
        return float(value)
    if kind is str:
        return str(value)
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        elif isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return tuple(_as_type(item, _parsed(v) if isinstance(v, str) else v) for v in value)
    raise TypeError(f"no coercion to {kind}")


def _type_words(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return f"a comma-separated list of {_type_words(typing.get_args(kind)[0]).split(' ', 1)[1]}s"
    names = {bool: "a bool", int: "an int", float: "a float", str: "a str"}
    return names.get(kind, str(kind))


def resolve_recipe(name: str, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """The named recipe with ``overrides`` applied.

    Overriding ``iterations`` alone rescales the milestones, the warm-up cap and the warm-up iterations to the
    new length, so a shortened run keeps the schedule's shape (the paper's 32k/48k of 64k become 50% and 75%).
    """
    base = get_recipe(name)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_FIELD_TYPES) - {"extra"})
    if unknown:
        import difflib

        synonyms = {"learning_rate": "lr", "wd": "weight_decay", "bs": "batch_size", "batch": "batch_size",
                    "steps": "iterations", "iters": "iterations", "max_iter": "iterations", "smoothing": "label_smoothing",
                    "ema": "ema_decay", "amp": "precision", "val": "holdout", "validation": "holdout"}
        hints = [[synonyms[k]] if k in synonyms else difflib.get_close_matches(k, _FIELD_TYPES, n=1) for k in unknown]
        hint = "; ".join(f"{k} (did you mean {h[0]}?)" if h else k for k, h in zip(unknown, hints))
        raise UsageError(f"unknown recipe field {hint}; fields: {', '.join(f for f in _FIELD_TYPES if f != 'extra')}")
    if "name" in overrides or "version" in overrides:
        raise UsageError("name and version identify the recipe and cannot be overridden; pick another `recipe`")
    values = {k: _coerce(k, v) for k, v in overrides.items() if k != "extra"}
    recipe = replace(base, **values)
    if "iterations" in values and "milestones" not in values and base.milestones:
        scale = recipe.iterations / base.iterations
        recipe = replace(recipe, milestones=tuple(max(1, round(m * scale)) for m in base.milestones))
    if "iterations" in values and "warmup" not in values and base.warmup:
        recipe = replace(recipe, warmup=round(base.warmup * recipe.iterations / base.iterations))
    if "iterations" in values and "warmup_max_iterations" not in values:
        scale = recipe.iterations / base.iterations
        recipe = replace(recipe, warmup_max_iterations=max(1, round(base.warmup_max_iterations * scale)))
    if values:
        recipe = replace(recipe, extra={**recipe.extra, "overrides": {k: overrides[k] for k in values}})
    return recipe.validate()
