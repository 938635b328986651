"""Where one training step of a recipe goes on this CPU (``train_throughput.py --profile``).

The step itself (forward, loss, backward, optimizer) is split by operator with torch.profiler's self CPU time,
scaled to the step's wall time measured without the profiler. The parts around it are timed on their own:
the recipe's batches (real CIFAR-10 through the trainer's own data path when the folder holds it, else the
embedded digits), the weight-EMA update, and the recipe's evaluation (its test views over the 10,000 test
images, or the hold-out), spread over the steps between two evaluations.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from resnet.train.distributed import DistContext
from resnet.train.precision import autocast_dtype
from resnet.train.recipes import resolve_recipe
from train_throughput import make_step

# operator name -> row of the table; the first match wins, everything else is "other (copies, casts, allocation)"
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("mkldnn_convolution", "_convolution", "conv2d", "convolution")),
    ("batch norm backward", ("native_batch_norm_backward", "batch_norm_backward")),
    ("batch norm forward", ("native_batch_norm", "batch_norm", "_batch_norm_impl_index")),
    ("ReLU forward and backward", ("relu", "threshold_backward", "clamp_min")),
    ("residual adds and other elementwise", ("aten::add", "aten::mul", "aten::div", "aten::sub")),
    ("optimizer step", ("Optimizer.step", "_foreach", "_fused_sgd")),
    ("loss, pooling, classifier", ("cross_entropy", "log_softmax", "nll_loss", "avg_pool", "max_pool", "addmm", "mm")),
)


def step_shares(step: Callable[[], None], steps: int) -> dict[str, float]:
    """Share of each :data:`CATEGORIES` row in the self CPU time of ``steps`` calls of ``step``."""
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        row = next((name for name, keys in CATEGORIES if any(k in event.key for k in keys)),
                   "other (copies, casts, allocation)")
        totals[row] = totals.get(row, 0.0) + event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in totals.items()}


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def around_the_step(recipe_name: str, model: str, data_dir: str, amp: torch.dtype | None) -> dict[str, float]:
    """Seconds per training step spent on batches, the EMA and evaluation, with the recipe's settings."""
    from resnet.models import create_model
    from resnet.train.data import EvalSet, load_train_data
    from resnet.train.tasks import evaluate

    recipe = resolve_recipe(recipe_name)
    has_cifar = (Path(data_dir) / "train").is_dir()
    data = load_train_data("cifar10" if has_cifar else "digits", data_dir if has_cifar else None, recipe, seed=0,
                           device=torch.device("cpu"), dist=DistContext(), dtype=torch.float32)
    stream = data.stream(0, 0)
    out = {"data and augmentation": seconds_per_call(lambda: next(stream), 20)}
    net = create_model(model, num_classes=data.num_classes, in_chans=data.in_chans).to(memory_format=torch.channels_last)
    if recipe.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
        out["weight EMA"] = seconds_per_call(lambda: ema.update_parameters(net), 20)
    evalset = data.test or data.holdout
    if evalset is not None:
        x, y = next(iter(evalset))
        single = EvalSet("one batch", len(y), lambda: iter([(x, y)]))
        per_batch = seconds_per_call(lambda: evaluate(net, single, flip=recipe.test_flip, amp=amp,
                                                      device=torch.device("cpu"), dist=DistContext(),
                                                      shift=recipe.test_shift), 2)
        evaluations = max(1, recipe.iterations // recipe.evaluation_interval_for(evalset.size))
        out["evaluation (its views, spread over the run)"] = per_batch * evalset.size / len(y) * evaluations / recipe.iterations
    out["source"] = 1.0 if has_cifar else 0.0
    return out


def profile_recipe(model: str, recipe_name: str, data_dir: str, *, steps: int = 10) -> None:
    recipe = resolve_recipe(recipe_name)
    native = autocast_dtype("auto", torch.device("cpu"))
    precisions = [("fp32", None)] + ([("bf16", native)] if native is not None else [])
    columns: dict[str, dict[str, float]] = {}
    for label, amp in precisions:
        step = make_step(model, recipe.batch_size, channels_last=recipe.channels_last, amp=amp, compiled=False,
                         label_smoothing=recipe.label_smoothing)
        shares = step_shares(step, steps)
        wall = seconds_per_call(step, steps)
        parts = around_the_step(recipe_name, model, data_dir, amp)
        source = "CIFAR-10" if parts.pop("source") else "digits (no CIFAR-10 folder)"
        rows = {k: v * wall for k, v in shares.items()} | parts
        columns[label] = rows
        print(f"{label}: step {wall * 1e3:.1f} ms for {recipe.batch_size} images; batches from {source}")
    names = [name for name, _ in CATEGORIES] + ["other (copies, casts, allocation)", "data and augmentation",
                                                "weight EMA", "evaluation (its views, spread over the run)"]
    print(f"\n{model}, recipe {recipe.name} v{recipe.version} (batch {recipe.batch_size}), share of a training step "
          "with everything around it")
    header = " | ".join(f"{label} ms | {label} share" for label in columns)
    print(f"| part | {header} |")
    print("|---|" + "---:|" * (2 * len(columns)))
    totals = {label: sum(rows.values()) for label, rows in columns.items()}
    for name in names:
        if not any(name in rows for rows in columns.values()):
            continue
        cells = " | ".join(f"{rows.get(name, 0.0) * 1e3:.2f} | {100 * rows.get(name, 0.0) / totals[label]:.1f} %"
                           for label, rows in columns.items())
        print(f"| {name} | {cells} |")
    cells = " | ".join(f"**{totals[label] * 1e3:.1f}** | {recipe.batch_size / totals[label]:.0f} images/s"
                       for label in columns)
    print(f"| whole step | {cells} |")
