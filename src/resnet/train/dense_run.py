"""One dense-task training run: :func:`train_dense` (the CLI and ``resnet experiment backbone-degradation`` call it)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ..models.interop import save_weights
from ..utils.atomic import atomic_write_text
from . import checkpoint as ckpt
from ..inference.dense import evaluate_dense
from .dense import (DENSE_DATASETS, MAIN_METRIC, DenseOptions, DenseRecipe, batch_samples, build_dense_model, dense_lr,
                    head_options, resolve_dense_recipe, training_loss)
from ..utils.device import resolve_device
from ..utils.runlock import run_lock, weights_digests
from .run_folder import check_resumable, prepare_folder
from .stopping import StopFlag, TrainingDiverged
from .metrics import MetricsLog, read_metrics

# Fields that may change between a run and its resumption.
_RESUME_MAY_CHANGE = {"log_every", "extra"}


def dense_metadata(opts: DenseOptions, recipe: DenseRecipe, classes: tuple[str, ...]) -> dict[str, Any]:
    """What :func:`resnet.models.dense.dense_model_from_checkpoint` rebuilds the model from."""
    return {"task": recipe.task, "dense": {"head": recipe.head, "backbone": opts.model, "num_classes": len(classes),
            "image_size": recipe.image_size,
            "head_options": head_options(recipe), "backbone_overrides": dict(opts.backbone_overrides)},
            "classes": list(classes), "dataset": opts.data, "recipe": recipe.name, "recipe_version": recipe.version,
            "seed": opts.seed}


def _setup(opts: DenseOptions) -> tuple[DenseRecipe, Path, torch.device]:
    from ..models import get_spec

    if opts.data not in DENSE_DATASETS:
        raise UsageError(f"`task` {opts.task} trains on {', '.join(DENSE_DATASETS)}, not {opts.data!r}")
    if opts.data_dir is None:
        raise UsageError("`task` detection/segmentation needs `data_dir`, e.g. `data_dir` ../shared/data/pennfudan")
    try:
        get_spec(opts.model)
    except ValueError as err:
        raise UsageError(str(err)) from None
    recipe = resolve_dense_recipe(opts.recipe or opts.task, opts.overrides)
    if recipe.task != opts.task:
        raise UsageError(f"recipe {recipe.name} trains a {recipe.task} head ({recipe.head}); `task` is {opts.task}")
    if opts.stop_after is not None and opts.stop_after < 1:
        raise UsageError(f"`stop_after` must be a positive number of iterations, got {opts.stop_after}")
    out = Path(opts.out) if opts.out is not None else Path("runs") / f"{recipe.head}-{opts.model}-{opts.data}"
    return recipe, out, resolve_device(opts.device)


def train_dense(opts: DenseOptions) -> dict[str, Any]:
    """Train per ``opts``; returns the run summary (also written to ``summary.json``)."""
    recipe, out, device = _setup(opts)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):  # one writer per folder (resnet.utils.runlock)
        return _train_dense(opts, recipe, out, device)


def _train_dense(opts: DenseOptions, recipe: DenseRecipe, out: Path, device: torch.device) -> dict[str, Any]:
    ckpt.remove_stale_temporaries(out)
    resume = prepare_folder(out, resume=opts.resume, overwrite=opts.overwrite, is_main=True)
    say = print if opts.progress else (lambda *a, **k: None)
    train, test = load_pennfudan(opts.data_dir, recipe, opts)
    torch.manual_seed(opts.seed)
    model = build_dense_model(recipe, opts.model, len(train.classes), pretrained=opts.pretrained,
                              backbone_overrides=opts.backbone_overrides).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    step, best, elapsed_before = 0, None, 0.0
    state = ckpt.load_state(out) if resume else None
    if state is not None:
        check_resumable(out, dict(state.get("recipe") or {}), recipe.as_dict(), (
            ("model", state.get("model_name"), opts.model), ("data", state.get("data"), opts.data),
            ("seed", state.get("seed"), opts.seed), ("limit", state.get("limit"), opts.limit)), _RESUME_MAY_CHANGE)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["cpu"])
        step, best, elapsed_before = int(state["step"]), state.get("best"), float(state.get("elapsed", 0.0))
    header = {"task": recipe.task, "model": opts.model, "head": recipe.head, "data": opts.data, "data_dir": opts.data_dir,
              "seed": opts.seed, "device": str(device), "pretrained": opts.pretrained, "limit": opts.limit,
              "recipe": recipe.as_dict()}
    atomic_write_text(out / "recipe.json", json.dumps(header, indent=2) + "\n")
    say(f"resnet train: {recipe.head} on {opts.model} ({'from ' + opts.pretrained if opts.pretrained else 'from scratch'}), "
        f"{opts.data}: {len(train.samples)} training / {len(test.samples)} test photos at {recipe.image_size} px -> {out}")
    say(f"recipe {recipe.name} v{recipe.version}: {recipe.description}"
        f"{'; resuming at iteration ' + str(step) if state else ''}", flush=True)
    log = MetricsLog(out, resume_step=step if state else None, tensorboard=opts.tensorboard)
    run = _Run(opts, recipe, out, device, model, optimizer, train, test, log, say)
    try:
        step, best, stop_reason = run.loop(step, best, elapsed_before)
    finally:
        log.close()
    return _finish(run, step, best, stop_reason)


def load_pennfudan(data_dir: str | None, recipe: DenseRecipe, opts: DenseOptions) -> Any:
    from ..data.pennfudan import load_pennfudan as load

    return load(data_dir, recipe.image_size, test_images=recipe.test_images, limit=opts.limit, strict=opts.strict)


class _Run:
    """The state of one run while it trains (the loop and its checkpoints)."""

    def __init__(self, opts: DenseOptions, recipe: DenseRecipe, out: Path, device: torch.device, model: nn.Module,
                 optimizer: torch.optim.Optimizer, train: Any, test: Any, log: MetricsLog, say: Any) -> None:
        self.opts, self.recipe, self.out, self.device = opts, recipe, out, device
        self.model, self.optimizer, self.train, self.test, self.log, self.say = model, optimizer, train, test, log, say
        self.meta = dense_metadata(opts, recipe, train.classes)
        self.started = time.monotonic()
        self.elapsed_before = 0.0
        self.final: dict[str, Any] = {}
        self.train_seconds = 0.0
        self.images = 0

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def save(self, step: int, best: dict[str, Any] | None) -> None:
        save_weights(self.model, self.out / ckpt.LAST_WEIGHTS, {**self.meta, "step": step})
        ckpt.save_state(self.out, {"step": step, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                                   "rng": {"cpu": torch.get_rng_state()}, "best": best, "recipe": self.recipe.as_dict(),
                                   "model_name": self.opts.model, "data": self.opts.data, "seed": self.opts.seed,
                                   "limit": self.opts.limit, "elapsed": self.elapsed()})

    def step_once(self, step: int) -> tuple[float, dict[str, float], float]:
        lr = dense_lr(self.recipe, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        samples, gen = batch_samples(self.train, self.recipe, self.opts.seed, step)
        loss, parts = training_loss(self.model, samples, self.recipe, gen, self.device)
        if not math.isfinite(float(loss.detach())):
            raise TrainingDiverged(f"the loss became {float(loss.detach())} at iteration {step + 1} (lr {lr:.4g}); try "
                                   f"`overrides` lr={lr / 10:.4g}; the last good checkpoint is in {self.out}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe.grad_clip:
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], self.recipe.grad_clip)
        self.optimizer.step()
        self.images += len(samples)
        return float(loss.detach()), parts, lr

    def evaluate(self, step: int, best: dict[str, Any] | None) -> dict[str, Any] | None:
        metrics = evaluate_dense(self.model, self.test, self.recipe.task, self.device) if self.test.samples else {}
        record = {"kind": "eval", "step": step, **{k: v for k, v in metrics.items() if not isinstance(v, list)},
                  "elapsed": round(self.elapsed(), 2)}
        self.log.write(record)
        key = MAIN_METRIC[self.recipe.task]
        self.final = {k: v for k, v in record.items() if k not in ("kind", "elapsed")}
        shown = ", ".join(f"{k} {v:.2f}" for k, v in record.items() if k not in ("kind", "step", "elapsed"))
        self.say(f"iteration {step}/{self.recipe.iterations}: {shown or 'no test photos'}", flush=True)
        if key in metrics and (best is None or metrics[key] > best[key]):
            best = {"step": step, key: metrics[key]}
            save_weights(self.model, self.out / ckpt.BEST_WEIGHTS, {**self.meta, "step": step, key: metrics[key]})
        return best

    def loop(self, step: int, best: dict[str, Any] | None, elapsed_before: float) -> tuple[int, Any, str | None]:
        self.elapsed_before, self.started = elapsed_before, time.monotonic()
        recipe, stop_reason = self.recipe, None
        window: list[float] = []
        window_start = time.monotonic()
        self.model.train()
        with StopFlag() as stop:
            while step < recipe.iterations and stop_reason is None:
                loss, parts, lr = self.step_once(step)
                step += 1
                window.append(loss)
                if step % recipe.log_every == 0 or step == recipe.iterations:
                    seconds = time.monotonic() - window_start
                    self.train_seconds += seconds
                    self.log.write({"kind": "train", "step": step, "loss": sum(window) / len(window), "lr": lr,
                                    **{f"loss_{k.removeprefix('loss_')}": v for k, v in parts.items()},
                                    "images_per_s": len(window) * recipe.batch_size / max(seconds, 1e-9),
                                    "elapsed": round(self.elapsed(), 2)})
                    window, window_start = [], time.monotonic()
                if step % recipe.evaluation_interval == 0 or step == recipe.iterations:
                    best = self.evaluate(step, best)
                    self.save(step, best)
                    window_start = time.monotonic()
                stop_reason = self._stop_reason(step, stop.signal)
            if stop_reason is not None:
                self.save(step, best)
        return step, best, stop_reason

    def _stop_reason(self, step: int, signal_number: int | None) -> str | None:
        if step >= self.recipe.iterations:
            return None
        if self.opts.stop_after is not None and step >= self.opts.stop_after:
            return f"stopped after iteration {step} as asked (--stop-after)"
        if self.opts.time_limit is not None and time.monotonic() - self.started >= self.opts.time_limit:
            return f"time limit of {self.opts.time_limit:g} s reached at iteration {step}"
        if signal_number is not None:
            return f"interrupted by signal {signal_number} at iteration {step}"
        return None


def _finish(run: _Run, step: int, best: dict[str, Any] | None, stop_reason: str | None) -> dict[str, Any]:
    from .dense_report import plot_dense_curves, write_dense_results

    opts, recipe, out = run.opts, run.recipe, run.out
    summary = {"task": recipe.task, "model": opts.model, "head": recipe.head, "data": opts.data, "data_dir": opts.data_dir,
               "pretrained": opts.pretrained, "train_images": len(run.train.samples), "test_images": len(run.test.samples),
               "recipe": recipe.as_dict(), "seed": opts.seed, "device": str(run.device), "steps": step,
               "finished": step >= recipe.iterations, "stop_reason": stop_reason, "final": run.final or None, "best": best,
               "seconds": round(run.elapsed(), 1),
               "images_per_s": round(run.images / run.train_seconds, 2) if run.train_seconds else 0.0,
               "skipped_files": len(run.train.skipped) + len(run.test.skipped),
               "skipped": (run.train.skipped + run.test.skipped)[:50], "files": weights_digests(out)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    plot_dense_curves(read_metrics(out / "metrics.jsonl"), out / "curves.png",
                      f"{recipe.head} on {opts.model}, {opts.data} ({recipe.name})", MAIN_METRIC[recipe.task])
    command = opts.command or f"resnet train --task {recipe.task} --model {opts.model} --data {opts.data}"
    write_dense_results(summary, out / "results.md", command)
    if opts.progress:
        for path, reason in summary["skipped"][:10]:
            print(f"skipped {path}: {reason}")
        if stop_reason:
            print(f"{stop_reason}; checkpoint in {out / ckpt.STATE_FILE}. Continue with the same command plus --resume")
    return summary
