"""Gradient flow through plain and residual networks, with and without BatchNorm (paper Sec. 4.1).

The paper argues that its deep plain nets are hard to optimise *despite* healthy gradients:
"These plain networks are trained with BN, which ensures forward propagated signals to have
non-zero variances. We also verify that the backward propagated gradients exhibit healthy norms
with BN." This module measures, for every layer on the main path (each convolution from the stem
to the last block, then the classifier; projection shortcuts excluded):

- ``weight``: the L2 norm of the loss gradient with respect to the layer's weights;
- ``backprop``: the L2 norm of the loss gradient with respect to the layer's *response*, the signal
  propagated backwards through the network (what vanishes or explodes). The response is the
  output of the BN after the convolution, as in Fig. 7 (the convolution's own output when BN is
  removed; the logits for the classifier). Taken after BN it does not depend on the scale of the
  conv weights, which BN cancels, whereas the gradient at the conv output scales with 1 / ||W||.

Both are taken on one fixed batch in training mode (BN uses batch statistics, as while training),
loss = mean cross-entropy. :func:`strip_batchnorm` gives the networks without BN; their weights keep
the He initialisation the paper relies on, and the convolutions have no biases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..train.recipes import RECIPES

# The paper's warm-up for very deep CIFAR nets (Sec. 4.2, ResNet-110), read from the cifar-paper recipe.
WARMUP_MIN_DEPTH = RECIPES["cifar-paper"].warmup_min_depth
WARMUP_FACTOR = RECIPES["cifar-paper"].warmup_factor


@dataclass
class LayerGradient:
    name: str
    weight: float  # ||dL/dW||
    backprop: float  # ||dL/d(response)||: after the layer's BN



@dataclass
class GradientSnapshot:
    step: int
    loss: float
    layers: list[LayerGradient]

    def as_dict(self) -> dict[str, Any]:
        # One list per quantity, in layer order (names are kept once per run): a 110-layer run stays a few kB.
        return {
            "step": self.step, "loss": _finite_or_none(self.loss),
            "weight": [_sig(x.weight) for x in self.layers], "backprop": [_sig(x.backprop) for x in self.layers],
        }


@dataclass
class GradientRun:
    """One network (plain or residual, with or without BN) measured at init and after training steps."""

    model: str
    depth: int
    residual: bool
    batchnorm: bool
    lr: float
    snapshots: list[GradientSnapshot] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # training loss at each step
    diverged_at: int | None = None  # first step whose loss was not finite

    @property
    def label(self) -> str:
        return f"{'ResNet' if self.residual else 'plain'}-{self.depth}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "depth": self.depth, "residual": self.residual, "batchnorm": self.batchnorm, "lr": self.lr,
            "diverged_at": self.diverged_at, "losses": [_sig(v) for v in self.losses],
            "layers": [g.name for g in self.snapshots[0].layers] if self.snapshots else [],
            "snapshots": [s.as_dict() for s in self.snapshots],
        }


def run_from_dict(d: dict[str, Any]) -> GradientRun:
    """Inverse of :meth:`GradientRun.as_dict` (missing values come back as NaN)."""

    def num(v: Any) -> float:
        return float("nan") if v is None else float(v)

    run = GradientRun(str(d["model"]), int(d["depth"]), bool(d["residual"]), bool(d["batchnorm"]), float(d["lr"]))
    run.diverged_at = d.get("diverged_at")
    run.losses = [num(v) for v in d.get("losses", [])]
    names = [str(n) for n in d.get("layers", [])]
    for s in d.get("snapshots", []):
        layers = [LayerGradient(n, num(w), num(b)) for n, w, b in zip(names, s["weight"], s["backprop"], strict=True)]
        run.snapshots.append(GradientSnapshot(int(s["step"]), num(s["loss"]), layers))
    return run


def _finite_or_none(v: float) -> float | None:
    # JSON has no inf/nan; a missing value marks a diverged measurement.
    return v if math.isfinite(v) else None


def _sig(v: float) -> float | None:
    """4 significant digits: what a log-scale plot shows, at a fraction of the JSON size (idempotent)."""
    return float(f"{v:.4g}") if math.isfinite(v) else None


def strip_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``model`` by the identity, in place; returns ``model``."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            strip_batchnorm(child)
    return model


def main_path_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every weight layer on the main path in network order: stem conv, block convs, classifier."""
    return [(name, layer) for name, layer, _ in _layers_and_responses(model)]


def _layers_and_responses(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    """(name, weight layer, module whose output is that layer's response) in network order.

    In post-activation nets ``bn{i}`` follows ``conv{i}``; once BN is removed it is an identity,
    which returns the conv output itself. Pre-activation blocks normalise before each conv, so there
    the conv output is the response.
    """
    preact = bool(getattr(getattr(model, "spec", None), "preact", False))
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.Identity)

    def response(conv: nn.Module, bn: Any) -> nn.Module:
        return bn if isinstance(bn, norm_types) and not preact else conv

    found: list[tuple[str, nn.Module, nn.Module]] = []
    if isinstance(getattr(model, "conv1", None), nn.Conv2d):
        found.append(("conv1", model.conv1, response(model.conv1, getattr(model, "bn1", None))))
    stages = getattr(model, "stage_names", [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(model, n)])
    for stage_name in stages:
        for j, block in enumerate(getattr(model, stage_name)):
            for i in (1, 2, 3):
                conv = getattr(block, f"conv{i}", None)
                if isinstance(conv, nn.Conv2d):
                    found.append((f"{stage_name}.{j}.conv{i}", conv, response(conv, getattr(block, f"bn{i}", None))))
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        found.append(("fc", fc, fc))
    return found


def _no_inplace(model: nn.Module) -> None:
    # An in-place ReLU would overwrite a layer output we take the gradient of (without BN, a conv
    # output feeds the ReLU directly), so autograd would answer for the wrong tensor.
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False


def measure_gradients(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, list[LayerGradient]]:
    """Loss and per-layer gradient norms of ``model`` on the batch ``(x, y)``, in training mode.

    Parameters are not changed and no ``.grad`` is accumulated (``torch.autograd.grad``).
    """
    _no_inplace(model)
    layers = _layers_and_responses(model)
    outputs: dict[int, Tensor] = {}

    def keep(i: int) -> Callable[..., None]:
        def hook(_m: nn.Module, _i: Any, out: Tensor) -> None:
            if i in outputs:
                raise RuntimeError(f"layer {layers[i][0]} ran twice in one forward pass; cannot attribute its gradient")
            outputs[i] = out

        return hook

    handles = [resp.register_forward_hook(keep(i)) for i, (_, _, resp) in enumerate(layers)]
    was_training = model.training
    model.train()
    try:
        loss = F.cross_entropy(model(x), y)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if len(outputs) != len(layers):
        raise RuntimeError(f"expected one output per layer ({len(layers)}), hooks saw {len(outputs)}")
    weights = [m.weight for _, m, _ in layers]
    grads = torch.autograd.grad(loss, weights + [outputs[i] for i in range(len(layers))])
    n = len(layers)
    result = [
        LayerGradient(name, float(grads[i].double().norm()), float(grads[n + i].double().norm()))
        for i, (name, _, _) in enumerate(layers)
    ]
    return float(loss.detach()), result


def run_gradient_experiment(
    model_factory: Callable[[], nn.Module],
    measure_batch: tuple[Tensor, Tensor],
    train_batches: Iterator[tuple[Tensor, Tensor]],
    *,
    steps: int,
    lr: float,
    batchnorm: bool,
    model_name: str,
    depth: int,
    residual: bool,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> GradientRun:
    """Measure at initialisation, train ``steps`` SGD steps, measure again on the same batch."""
    model = model_factory()
    if not batchnorm:
        strip_batchnorm(model)
    run = GradientRun(model_name, depth, residual, batchnorm, lr)
    x, y = measure_batch
    loss, grads = measure_gradients(model, x, y)
    run.snapshots.append(GradientSnapshot(0, loss, grads))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    model.train()
    done = 0
    for step in range(1, steps + 1):
        xb, yb = next(train_batches)
        opt.zero_grad(set_to_none=True)
        loss_t = F.cross_entropy(model(xb), yb)
        value = float(loss_t.detach())
        run.losses.append(value)
        if not math.isfinite(value):
            run.diverged_at = step
            break
        loss_t.backward()
        opt.step()
        done = step
    if steps > 0:
        loss, grads = measure_gradients(model, x, y)
        if not math.isfinite(loss) and run.diverged_at is None:
            run.diverged_at = done + 1
        run.snapshots.append(GradientSnapshot(done, loss, grads))
    return run


def summarize(run: GradientRun) -> dict[str, Any]:
    """Figures for the table: losses and first-to-last-conv gradient ratios at each snapshot.

    ``*_ratio``: the first conv's weight-gradient norm over the last conv's; ``*_bp_ratio``: the same
    for the gradient w.r.t. their responses (the back-propagated signal). Far below 1 means vanishing
    towards the input, far above 1 exploding; healthy nets stay within an order of magnitude or two.
    """
    out: dict[str, Any] = {"network": run.label, "batchnorm": run.batchnorm, "diverged_at": run.diverged_at}
    for i, snap in enumerate(run.snapshots):
        convs = [g for g in snap.layers if g.name != "fc"]
        key = "init" if i == 0 else "trained"  # a run that diverged at its first step is measured after 0 steps too
        out[f"{key}_step"] = snap.step
        out[f"{key}_loss"] = _finite_or_none(snap.loss)
        out[f"{key}_first"] = _finite_or_none(convs[0].weight)
        out[f"{key}_last"] = _finite_or_none(convs[-1].weight)
        out[f"{key}_ratio"] = _ratio(convs[0].weight, convs[-1].weight)
        out[f"{key}_bp_ratio"] = _ratio(convs[0].backprop, convs[-1].backprop)
    return out


def _ratio(a: float, b: float) -> float | None:
    return _finite_or_none(a / b) if b > 0 and math.isfinite(a) and math.isfinite(b) else None


def _normalise(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (images.to(torch.float32) / 255.0 - m) / s



def gradient_study(
    dataset: Any,
    depths: list[int],
    *,
    steps: int = 20,
    batch_size: int = 64,
    lr: float = 0.1,
    lr_no_bn: float = 0.01,
    no_bn: bool = False,
    warmup: bool = True,
    seed: int = 0,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> list[GradientRun]:
    """Plain and residual CIFAR nets of each depth, with BN (and without BN if ``no_bn``).

    With ``warmup``, nets of :data:`WARMUP_MIN_DEPTH` layers or more train with BN at ``lr`` x
    :data:`WARMUP_FACTOR`: the paper starts ResNet-110 at 0.01 for its first ~400 iterations because
    0.1 "is slightly too large to start converging" (Sec. 4.2), and the ``cifar-paper`` recipe does the
    same for every net that deep; a few measured steps all fall inside that warm-up.

    ``dataset`` is a :class:`resnet.data.ArrayDataset` (training split). Every network of one depth
    starts from the same seed, so a plain net and its residual twin share their initial weights
    (option-A shortcuts have no parameters), see the same measurement batch and the same
    training batches in the same order (plain images, no augmentation).
    """
    from ..models import create_model

    measure, train_batches = _study_batches(dataset, steps=steps, batch_size=batch_size, seed=seed, device=device)
    runs: list[GradientRun] = []
    for depth in depths:
        for bn in (True, False) if no_bn else (True,):
            for residual in (False, True):
                name = f"{'resnet' if residual else 'plain'}{depth}"
                if progress:
                    progress(f"{name} {'with' if bn else 'without'} BN: {steps} steps")

                def factory(name: str = name) -> nn.Module:
                    torch.manual_seed(seed)
                    return create_model(name, num_classes=dataset.num_classes, in_chans=dataset.channels).to(device)

                rate = (lr * (WARMUP_FACTOR if warmup and depth >= WARMUP_MIN_DEPTH else 1.0)) if bn else lr_no_bn
                runs.append(
                    run_gradient_experiment(
                        factory, measure, train_batches(), steps=steps, lr=rate, batchnorm=bn,
                        model_name=name, depth=depth, residual=residual,
                    )
                )
    return runs


def _study_batches(
    dataset: Any, *, steps: int, batch_size: int, seed: int, device: str
) -> tuple[tuple[Tensor, Tensor], Callable[[], Iterator[tuple[Tensor, Tensor]]]]:
    """The measurement batch, and a factory of the training batches every network of a study sees in the same order."""
    n = len(dataset)
    if n < batch_size:
        raise ValueError(f"the data hold {n} images, fewer than one batch of {batch_size}")
    # One measurement batch, then `steps` training batches, drawn at random (seeded) without repeats
    # while the data last; only those images are normalised (all of CIFAR-10 in float32 is 600 MB).
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: (steps + 1) * batch_size]
    images = _normalise(dataset.images[order], tuple(dataset.mean), tuple(dataset.std))
    labels = dataset.labels[order].to(torch.int64)

    def batch(start: int) -> tuple[Tensor, Tensor]:
        return images[start : start + batch_size].to(device), labels[start : start + batch_size].to(device)

    first_train = batch_size if len(order) >= 2 * batch_size else 0  # too few images: train on the measured ones too

    def train_batches() -> Iterator[tuple[Tensor, Tensor]]:
        start = first_train
        while True:
            if start + batch_size > len(order):
                start = first_train
            yield batch(start)
            start += batch_size

    return batch(0), train_batches
