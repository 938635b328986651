"""Typed parameters of the paper's experiments and of the backbone study, their checks, and what every
experiment returns. Free of PyTorch: the command line builds its options' defaults from these.

Each experiment is a function of one frozen config (:mod:`resnet.analysis.training_experiments`,
:mod:`resnet.analysis.measured_experiments`, :func:`resnet.analysis.backbone_study.run_backbone_degradation`),
so it runs from Python exactly as ``resnet experiment ...`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

from ..errors import UsageError
from .runs.budgets import DEFAULT_BUDGET, IMAGENET_DATA

CIFAR_DEPTHS = (20, 32, 44, 56)  # Fig. 6
TABLE_DEPTHS = CIFAR_DEPTHS + (110,)  # Table 6
TABLE2_DEPTHS = (18, 34)  # Table 2: plain-18/34 against ResNet-18/34
IMAGENET_ALLOWED = (18, 34, 50, 101, 152)


@dataclass(frozen=True)
class ExperimentResult:
    """What one experiment wrote (figures, table, JSON: in that order) and measured (``data``: the JSON's content)."""

    files: tuple[Path, ...]
    data: dict[str, Any]
    unfinished: tuple[tuple[str, str], ...] = ()  # (run, reason) of runs that did not finish: rerun to resume them

    @property
    def finished(self) -> bool:
        return not self.unfinished


@dataclass(frozen=True)
class TrainingExperiment:
    """Plain and residual nets trained alike (``degradation``, ``depth_table``); finished runs are kept."""

    default_depths: ClassVar[tuple[int, ...]] = CIFAR_DEPTHS
    data: str = "cifar10"
    data_dir: str | None = None
    depths: tuple[int, ...] | None = None  # None: default_depths (TABLE2_DEPTHS on ImageNet-layout data)
    budget: str = DEFAULT_BUDGET  # a name in resnet.analysis.runs.budgets.BUDGETS
    iterations: int | None = None  # overrides the budget's length (lr ÷10 at 50 % and 75 %)
    seed: int = 0
    parallel: int = 1  # networks trained at once, as subprocesses
    device: str | None = None  # None: CUDA when available
    overrides: tuple[str, ...] = ()  # recipe fields, KEY=VALUE, for every run
    plot_only: bool = False  # redraw from the run folders already in `out`
    out: Path = Path("experiments/degradation")

    @property
    def imagenet(self) -> bool:
        return self.data in IMAGENET_DATA

    def checked_depths(self) -> list[int]:
        """``depths`` checked against the data: CIFAR-style 6n+2 nets, or the ImageNet nets for ImageNet-layout data."""
        if self.imagenet:
            depths = list(self.depths or TABLE2_DEPTHS)
            bad = [d for d in depths if d not in IMAGENET_ALLOWED]
            if bad:
                raise UsageError(f"`data` {self.data} trains the ImageNet nets: `depths` from "
                                 f"{', '.join(map(str, IMAGENET_ALLOWED))}, got {', '.join(map(str, bad))}")
            return list(dict.fromkeys(depths))
        return check_depths(self.depths or self.default_depths)


@dataclass(frozen=True)
class DegradationConfig(TrainingExperiment):
    """Fig. 6: training and test error against iterations, plain vs residual."""


@dataclass(frozen=True)
class DepthTableConfig(TrainingExperiment):
    """Table 6 (Table 2 on ImageNet-layout data): test error against depth, mean ± std over ``runs``."""

    default_depths: ClassVar[tuple[int, ...]] = TABLE_DEPTHS
    runs: int = 1  # independent runs (seeds) per depth
    plain: bool = False  # the plain twins too (always on ImageNet-layout data)
    out: Path = Path("experiments/depth-table")


@dataclass(frozen=True)
class GradientsConfig:
    """Sec. 4.1: per-layer gradient norms of plain and residual nets at initialisation and after ``steps`` SGD steps."""

    data: str | None = None  # a data set name; None: `data_dir` is an image folder DATA/train/<class>/*
    data_dir: str | None = None
    depths: tuple[int, ...] = (20, 56, 110)
    no_bn: bool = False  # also every network with BatchNorm replaced by the identity
    steps: int = 20
    batch_size: int = 64
    lr: float = 0.1  # with BN; nets of 110+ layers use a tenth (the paper's warm-up) unless `warmup` is off
    warmup: bool = True
    lr_no_bn: float = 0.01
    seed: int = 0
    device: str = "cpu"
    out: Path = Path("experiments/gradients")

    def check(self) -> list[int]:
        """The depths, once each; :class:`UsageError` for impossible values."""
        depths = check_depths(self.depths)
        check_positive("steps", self.steps, allow_zero=True)
        check_positive("batch_size", self.batch_size)
        if self.lr <= 0 or self.lr_no_bn <= 0:
            raise UsageError("`lr` and `lr_no_bn` must be positive")
        return depths


@dataclass(frozen=True)
class ResponsesConfig:
    """Fig. 7: std of each 3x3 layer's response after BN, for each network in ``sources``."""

    sources: tuple[str, ...]  # checkpoint files, run folders, or model names (each takes the next of `weights`)
    weights: tuple[str, ...] = ()
    data: str | None = None
    data_dir: str | None = None
    split: str = "test"
    limit: int | None = None  # images spread evenly over the split; None: all
    batch_size: int = 250
    device: str = "cpu"
    out: Path = Path("experiments/responses")


@dataclass(frozen=True)
class BackboneStudyConfig:
    """The degradation study on a dense task: the same head on resnetD and plainD backbones, Penn-Fudan."""

    data_dir: str
    depths: tuple[int, ...] = TABLE2_DEPTHS
    tasks: tuple[str, ...] = ("segmentation",)  # segmentation and/or detection (resnet.train.recipes.TASKS)
    overrides: tuple[str, ...] = ()  # recipe fields, KEY=VALUE, for every run
    seed: int = 0
    device: str | None = None  # None: CUDA when available
    pretrained: Path | None = None  # DIR/<name> (run folder), DIR/<name>.safetensors or .pth; None: from scratch
    plot_only: bool = False
    out: Path = Path("experiments/backbone-degradation")
    command: str = ""  # the command line that ran the study, quoted in its results table

    def checked_depths(self) -> list[int]:
        bad = [d for d in self.depths if d not in IMAGENET_ALLOWED]
        if bad:
            raise UsageError(f"`depths` takes ImageNet-style depths ({', '.join(map(str, IMAGENET_ALLOWED))}), got {bad}")
        return list(dict.fromkeys(self.depths))


def check_depths(depths: Sequence[int]) -> list[int]:
    """CIFAR depths 6n+2, once each in the order given."""
    bad = [d for d in depths if d < 8 or (d - 2) % 6]
    if bad:
        raise UsageError(f"`depths` must be CIFAR depths 6n+2 (8, 14, 20, 32, 44, 56, 110, ...), got {', '.join(map(str, bad))}")
    return list(dict.fromkeys(depths))  # drop repeats, keep the order


def check_positive(name: str, value: int | None, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise UsageError(f"`{name}` must be a {'non-negative' if allow_zero else 'positive'} integer, got {value}")

