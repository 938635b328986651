"""The trainer: :func:`train` (the CLI, the experiments and torchrun call it) runs one :class:`Trainer`, whatever
the task (classification, detection, segmentation: :mod:`resnet.train.tasks`).

In the spirit of fb.resnet.torch's ``train.lua``: :meth:`Trainer.build` sets the run up (task, recipe, run
folder, data, network, optimizer, a checkpoint to :meth:`~Trainer.restore`), then every batch is one
:meth:`~Trainer.step`, followed when due by :meth:`~Trainer.log` and :meth:`~Trainer.evaluate` (which
checkpoints :meth:`~Trainer.state_dict`), until :meth:`~Trainer.should_stop`; :meth:`~Trainer.finish`
writes the summary, curves and results table. The task builds the network, its batches and loss, and scores
it; how a step computes the gradient (whole batch, DDP, per-core replicas) is a strategy
(:mod:`resnet.train.strategy`) the task picks; the update after it, EMA, the stop rules, the time limit, the
evaluation budget and the checkpoints are one code path here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..utils.atomic import atomic_write_text
from ..utils.device import resolve_device
from ..utils.runlock import run_lock, weights_digests
from . import checkpoint as ckpt
from .averaging import update_average, weight_average
from .console import Progress, Say
from .distributed import DistContext, from_environment
from .metrics import MetricsLog, read_metrics
from .optim import build_optimizer
from .precision import autocast_dtype, configure_backends, precision_note
from .recipes import resolve_recipe
from .report import plot_curves, print_results, write_results_markdown
from .run_folder import check_resumable, prepare_folder, saved_recipe, storage_error
from .schedule import LRSchedule
from .stopping import StopFlag, TrainingDiverged, TrainingInterrupted
from .strategy import StepStrategy
from .tasks import Task, default_model, default_recipe, evaluate, make_task

#: What an evaluated image is assumed to cost, in training images, until an evaluation has been timed: a forward
#: pass alone costs about a third of a training step's; half errs towards keeping time for the last evaluation.
EVAL_IMAGE_COST = 0.5

__all__ = ["TrainOptions", "Trainer", "train", "evaluate", "default_model", "default_recipe", "weights_digest"]


@dataclass
class TrainOptions:
    """One run, whatever its task."""

    model: str | None = None  # default: resnet20 for small images, resnet50 for ImageNet-layout data, resnet18 as backbone
    data: str = "digits"  # detection / segmentation: pennfudan
    data_dir: str | None = None
    recipe: str | None = None  # default: by task and data set (digits, cifar-paper, imagenet-paper, detection, ...)
    overrides: dict[str, str] = field(default_factory=dict)
    out: Path | None = None  # default: runs/<model>-<data> (dense tasks: runs/<head>-<model>-<data>)
    seed: int = 0
    device: str | None = None  # default: cuda when available
    resume: bool = False
    overwrite: bool = False
    deterministic: bool = False
    progress: bool = True
    strict: bool = False
    tensorboard: bool = True
    stop_after: int | None = None  # leave the run unfinished (resumable) after this many iterations
    time_limit: float | None = None  # seconds; stop at the next iteration past it, checkpoint, exit
    command: str = ""
    # classification: fine-tune from NAME[:TAG], a weights file or a run folder (train/finetune.py);
    # detection / segmentation: classification weights for the backbone (a path or NAME:TAG)
    init: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the network (the backbone)
    task: str = "classification"  # classification, detection, segmentation (train/tasks.py)
    limit: int | None = None  # dense tasks: use the first N photos only (quick runs, tests)


def train(opts: TrainOptions | None = None, /, **fields: Any) -> dict[str, Any]:
    """Train per ``opts``, with ``fields`` of :class:`TrainOptions` set on top (``train(model="resnet20",
    data="cifar10", data_dir=...)``); returns the run summary (also written to ``summary.json``)."""
    opts = replace(opts or TrainOptions(), **fields) if fields or opts is None else opts
    device = resolve_device(opts.device)
    dist = from_environment(opts.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    trainer = None
    try:
        trainer = Trainer(opts, device, dist)
        with trainer.held:  # the run folder's lock (taken in _prepare_out), released however the run ends
            return trainer.run()
    except OSError as err:  # disk full, quota, read-only or vanished folder: say so, and what survived
        out = getattr(trainer, "out", None) or Path(opts.out or "runs")
        raise storage_error(err, out) from None
    finally:
        dist.close()


def weights_digest(net: nn.Module) -> str:
    """SHA-256 of every tensor of the state dict in order: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for key, value in net.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# -- the run ----------------------------------------------------------------------------------------
class Trainer:
    """One training run: :meth:`build`, then :meth:`step` / :meth:`log` / :meth:`evaluate` per batch until
    :meth:`should_stop`, then :meth:`finish`. :meth:`run` does all of it."""

    def __init__(self, opts: TrainOptions, device: torch.device, dist: DistContext) -> None:
        self.opts, self.device, self.dist = opts, device, dist
        self.iteration, self.best, self.elapsed_before, self.eval_seconds, self.last_eval_seconds = 0, None, 0.0, 0.0, 0.0
        self.last_eval_images = 0
        self.resumed = False
        self.stop_reason: str | None = None
        self.stop = StopFlag()
        self.held = contextlib.ExitStack()

    # -- build ----------------------------------------------------------------------------------
    def build(self) -> None:
        """Everything before the first step, in an order that fixes every random number drawn."""
        self._resolve()
        self._prepare_out()
        self._load_data()
        self._build_model()
        state = ckpt.load_state(self.out) if self.resume else None
        if state is not None:
            self.restore(state)
        self._build_strategy()
        self._announce()
        self._open_windows()

    def _resolve(self) -> None:
        from ..models import get_spec

        opts = self.opts
        self.task: Task = make_task(opts.task, opts)
        default = "finetune" if opts.init and opts.data == "folder" and opts.task == "classification" else None
        self.recipe = resolve_recipe(opts.recipe or default or default_recipe(opts.data, opts.task), opts.overrides)
        if self.recipe.task != opts.task:
            raise UsageError(f"recipe {self.recipe.name} trains {self.recipe.task}, but `task` is {opts.task}; pick a "
                             f"{opts.task} recipe (default: {default_recipe(opts.data, opts.task)})")
        self.model_name = self.task.resolve(opts, self.recipe, self.dist)
        try:  # before the name becomes part of a folder name: "../x" must not create folders anywhere
            get_spec(self.model_name)
        except ValueError as err:
            raise UsageError(str(err)) from None
        self.out = Path(opts.out) if opts.out is not None else self.task.default_out(self.model_name, self.recipe)
        self.say = Say(self.dist.is_main and opts.progress)
        if opts.seed < 0:
            raise UsageError(f"`seed` must be >= 0, got {opts.seed}")
        if opts.stop_after is not None and opts.stop_after < 1:
            raise UsageError(f"`stop_after` must be a positive number of iterations, got {opts.stop_after}")
        configure_backends(opts.deterministic, self.device)

    def _prepare_out(self) -> None:
        """The one place the run folder is opened (created, cleaned of stale temporaries, checked for a run)."""
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.held.enter_context(run_lock(self.out))  # one writer per folder (resnet.utils.runlock)
            ckpt.remove_stale_temporaries(self.out)
        self.resume = prepare_folder(self.out, resume=self.opts.resume, overwrite=self.opts.overwrite,
                                     is_main=self.dist.is_main)
        self.dist.barrier()

    def _load_data(self) -> None:
        self.amp = autocast_dtype(self.recipe.precision, self.device)
        self.task.load_data(self.recipe, self.device, self.dist, self.amp)

    def _build_model(self) -> None:
        recipe = self.recipe
        torch.manual_seed(self.opts.seed)
        model = self.task.build_model(recipe, self.device)
        self.optimizer = build_optimizer(self.task.group_plan(model, recipe), recipe)
        self.schedule = LRSchedule(recipe, self.task.depth)
        self.ema = weight_average(model, recipe)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        self.model: nn.Module = model

    def _build_strategy(self) -> None:
        recipe, dist = self.recipe, self.dist
        if recipe.sync_bn and dist.enabled:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        net = dist.wrap(self.model, self.device)
        if recipe.compile:
            net = torch.compile(net, mode=None if recipe.compile_mode == "default" else recipe.compile_mode)
        self.train_net: nn.Module = net
        self.strategy: StepStrategy = self.task.strategy(net, self.model, self.scaler, recipe, self.device, dist)
        self.eval_net: nn.Module = self.ema.module if self.ema is not None else self.model

    def _announce(self) -> None:
        opts, recipe, out, say = self.opts, self.recipe, self.out, self.say
        precision = str(self.amp or torch.float32).replace("torch.", "")
        fallback = precision_note(recipe.precision, self.amp, self.device)
        if self.dist.is_main:
            header = {"task": recipe.task, "model": self.model_name, "data": opts.data, "data_dir": opts.data_dir,
                      "seed": opts.seed, "device": str(self.device), "processes": self.dist.world_size,
                      **self.task.header(), "precision": precision, **({"precision_note": fallback} if fallback else {}),
                      "recipe": recipe.as_dict()}
            atomic_write_text(out / "recipe.json", json.dumps(header, indent=2) + "\n")
            say(self.task.announce(self.model_name, out))
            replicas = getattr(self.task, "replicas", 1)
            start = 'resuming at iteration ' + str(self.iteration) if self.resumed else self.task.start_label()
            say(f"device {self.device}, {self.dist.world_size} process(es)"
                f"{f', {replicas} core replicas' if replicas > 1 else ''}, compute {precision}, {start}")
            say(f"recipe {recipe.name} v{recipe.version}: {recipe.description}\n{recipe.describe()}")
            for note in ([fallback] if fallback else []) + self.task.notes(self.optimizer):
                say(note)
        self.log_file = MetricsLog(out, resume_step=self.iteration if self.resumed else None,
                                   tensorboard=opts.tensorboard) if self.dist.is_main else None
        self.meta = self.task.metadata()
        self.eval_every = self.task.eval_interval(recipe)

    def _open_windows(self) -> None:
        """Running sums of the current log and evaluation windows, kept on the device so a step never waits."""
        self.log_sums: dict[str, Tensor] = {}
        self.eval_sums: dict[str, Tensor] = {}
        self.progress = Progress(self.dist.is_main and self.opts.progress, self.recipe.iterations, self.iteration)
        self.final: dict[str, Any] = {}
        self.last_window: dict[str, Any] = {}
        self.lr = 0.0
        self.window_start, self.window_images, self.window_first = time.monotonic(), 0, self.iteration
        self.train_seconds, self.train_images = 0.0, 0
        self.run_start = time.monotonic()

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`restore` needs to continue bit-identically."""
        device = self.device
        rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
        return {
            "step": self.iteration, "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "schedule": self.schedule.state_dict(), "rng": rng, "best": self.best, "recipe": self.recipe.as_dict(),
            "model_name": self.model_name, "data": self.opts.data, "seed": self.opts.seed,
            "world_size": self.dist.world_size, "elapsed": self.elapsed(), "eval_seconds": self.eval_seconds,
            **self.task.identity(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (a checkpoint of the same settings, else a one-line error)."""
        check_resumable(self.out, saved_recipe(state), self.recipe.as_dict(), (
            ("model", state.get("model_name"), self.model_name), ("data", state.get("data"), self.opts.data),
            ("seed", state.get("seed"), self.opts.seed), ("processes", state.get("world_size"), self.dist.world_size),
            *((key, state.get(key), value) for key, value in self.task.identity().items())))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("schedule") is not None:
            self.schedule.load_state_dict(state["schedule"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["cpu"])
        if self.device.type == "cuda" and state["rng"].get("cuda") is not None and self.dist.world_size == 1:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.iteration, self.best = int(state["step"]), state.get("best")
        self.elapsed_before, self.resumed = float(state.get("elapsed", 0.0)), True
        self.eval_seconds = float(state.get("eval_seconds", 0.0))

    def save_checkpoint(self) -> None:
        """Weights first: a kill between the two files then leaves weights at least as new as the state,
        never a resumable state without a ``last.safetensors`` beside it. Only the main process writes."""
        from ..models.interop import save_weights

        if not self.dist.is_main:
            return
        state = self.state_dict()
        save_weights(self.eval_net, self.out / ckpt.LAST_WEIGHTS, {**self.meta, "step": self.iteration})
        ckpt.save_state(self.out, state)

    def elapsed(self) -> float:
        """Seconds of training, this process and the runs it resumed."""
        return self.elapsed_before + time.monotonic() - self.run_start

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Build, train until done or stopped (checkpointing a stop), finish."""
        self.build()
        start = self.iteration
        recipe, after = self.recipe, self.opts.stop_after
        if after is not None and start >= after and start < recipe.iterations:
            self.stop_reason = f"the run is at iteration {start}, already past `stop_after` {after}; nothing to do"
        with self.stop, self.progress:
            self.train_net.train()
            if self.iteration < recipe.iterations and self.stop_reason is None:
                self._loop()
            if self.stop_reason is not None and self.iteration != start:
                self.dist.broadcast_buffers(self.eval_net)
                self.save_checkpoint()
            self.train_seconds += max(0.0, time.monotonic() - self.window_start) if self.window_images else 0.0
            self.train_images += self.window_images
        return self.finish()

    def _loop(self) -> None:
        """The task's batches from the current iteration on, until the run stops."""
        total = self.recipe.iterations
        for batch in self.task.batches(self.iteration):
            self.step(*batch)
            if self.iteration % self.recipe.log_every == 0 or self.iteration == total:
                self.log()
            if self.iteration == total or (self.iteration % self.eval_every == 0 and self._within_eval_budget()):
                if not self.evaluate(final=self.iteration == total):
                    return
            if self.should_stop():
                return

    def _within_eval_budget(self) -> bool:
        """Whether an evaluation that falls due runs: always, unless the recipe's ``eval_share`` caps evaluating.
        Then it runs when evaluating, with it and the last evaluation (which always runs) at their expected cost,
        stays within that share of the run's expected wall time; so a short run keeps its time for the last one
        rather than spending it early. Every rank decides alike."""
        share = self.recipe.eval_share
        if not share:
            return True
        images = self.train_images + self.window_images  # every rank's, as the recipe's batch counts them
        per_train_image = (self.train_seconds + time.monotonic() - self.window_start) / max(1, images)
        per_eval_image = (self.last_eval_seconds / self.last_eval_images if self.last_eval_images
                          else EVAL_IMAGE_COST * per_train_image)
        interim = per_eval_image * sum(self.task.eval_images(s) for s in self.task.interim_splits)
        last = per_eval_image * sum(self.task.eval_images(s) for s in ("holdout", "test"))
        remaining = per_train_image * self.recipe.batch_size * (self.recipe.iterations - self.iteration)
        evaluating = self.eval_seconds + interim + last
        over = evaluating > share * (self.elapsed() + remaining + interim + last)
        return not self.dist.any_true(over, self.device)

    def step(self, *batch: Any) -> None:
        """One optimizer step on the batch: the learning rate, the strategy's gradient, the update, the sums."""
        recipe, optimizer, scaler = self.recipe, self.optimizer, self.scaler
        self.lr = lr = self.schedule.lr(self.iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss, out = self.strategy.forward_backward(*batch, amp=self.amp, label_smoothing=recipe.label_smoothing)
        if recipe.grad_clip:
            scaler.unscale_(optimizer)  # nothing to undo unless float16 scaled the loss
            nn.utils.clip_grad_norm_(self.model.parameters(), recipe.grad_clip)
        scaler.step(optimizer)  # optimizer.step(), skipped on float16 overflow
        scaler.update()
        self.iteration += 1
        if self.ema is not None:
            update_average(self.ema, self.model, recipe, self.iteration)
        self._count(loss, out, batch)
        self.progress.advance()

    def _count(self, loss: Tensor, out: Any, batch: tuple[Any, ...]) -> None:
        self.window_images += self.task.batch_len(batch) * self.dist.world_size
        stats = self.task.train_stats(loss, out, batch)
        for sums in (self.log_sums, self.eval_sums):
            for key, value in stats.items():
                sums[key] = sums[key] + value if key in sums else value.clone()
        if self.device.type == "cpu" and not math.isfinite(float(loss.detach())):
            self._diverged(loss)
        if self.schedule.warming_up and "wrong" in stats:
            # The paper's warm-up for very deep nets ends on a measurement, so look at every step.
            err = 100.0 * float(stats["wrong"] / stats["n"])
            if self.schedule.observe_training_error(self.iteration, err):
                self.say(f"iteration {self.iteration}: training error {err:.1f}% < {self.recipe.warmup_until_error:g}%, "
                         f"warm-up over, lr {self.recipe.lr:g}")

    def _reduce(self, sums: dict[str, Tensor]) -> dict[str, float]:
        """A window's sums over every rank, as numbers."""
        if not sums:
            return {}
        keys = sorted(sums)
        return dict(zip(keys, self.dist.all_reduce_sum(torch.stack([sums[k] for k in keys])).tolist()))

    def log(self) -> None:
        """Write the training window's loss (error, loss parts), lr and speed (every rank's share summed); the last
        window is what the summary calls the final training loss / error."""
        window = self.task.window_record(self._reduce(self.log_sums))
        if not math.isfinite(window["loss"]):
            self._diverged(window["loss"])
        seconds = time.monotonic() - self.window_start
        self.train_seconds += seconds
        self.train_images += self.window_images
        rate = self.window_images / max(seconds, 1e-9)
        record = {"kind": "train", "step": self.iteration,
                  "epoch": round(self.iteration / self.task.batches_per_epoch(), 4), **window, "lr": self.lr,
                  "images_per_s": rate, "elapsed": round(self.elapsed(), 2)}
        if self.log_file is not None:
            self.log_file.write(record)
        self.last_window = {f"train_{k}": v for k, v in window.items() if k in ("loss", "error")}
        self.last_window["train_window"] = [self.window_first + 1, self.iteration]
        error = f"  err {window['error']:5.2f}%" if "error" in window else ""
        self.progress.info(f"loss {window['loss']:.3f}{error}  lr {self.lr:.4g}  {rate:,.0f} img/s")
        self.log_sums = {}
        self.window_start, self.window_images, self.window_first = time.monotonic(), 0, self.iteration

    def evaluate(self, final: bool = False) -> bool:
        """Score the task's splits (both at the ``final`` evaluation), keep the best weights, checkpoint.
        ``False``: Ctrl-C abandoned it."""
        eval_started = time.monotonic()
        window = self.task.window_record(self._reduce(self.eval_sums)) if self.eval_sums else {}
        self.dist.broadcast_buffers(self.eval_net)  # every rank evaluates (its share with) the same network
        record: dict[str, Any] = {"kind": "eval", "step": self.iteration,
                                  **{f"train_{k}": window[k] for k in ("error", "loss") if k in window}}
        abandon = None if self.dist.enabled else (lambda: self.stop.signal is not None)  # one rank may decide alone
        scored = [s for s in ("holdout", "test") if final or s in self.task.interim_splits]
        for split in scored:
            scores = self.task.evaluate(self.eval_net, split, abandon)
            if scores is None:  # Ctrl-C: the checkpoint after the loop records this finished step
                name = signal.Signals(self.stop.signal or signal.SIGINT).name
                self.stop_reason = f"interrupted by {name} at iteration {self.iteration}"
                return False
            record.update(scores)
        record["elapsed"] = round(self.elapsed(), 2)
        record["eval_seconds"] = round(self.eval_seconds + time.monotonic() - eval_started, 2)  # this one included
        self.eval_sums = {}
        self._keep_best(record)
        self.final = {**self.last_window, **{k: v for k, v in record.items()
                                             if k not in ("kind", "step", "elapsed", "eval_seconds", "train_error", "train_loss")}}
        if self.log_file is not None:
            self.log_file.write(record)
        self.say(self.task.eval_line(record, self.recipe.iterations), self.progress)
        self.save_checkpoint()
        self.last_eval_seconds = spent = time.monotonic() - eval_started
        self.last_eval_images = sum(self.task.eval_images(s) for s in scored)
        self.eval_seconds += spent
        self.window_start += spent  # evaluation time is not training time
        return True

    def _keep_best(self, record: dict[str, Any]) -> None:
        """The best held-out score so far (the task's selection key) steers the schedule and is saved as
        ``best.safetensors``; the test set never selects."""
        from ..models.interop import save_weights

        key, lower = self.task.selection_key, self.task.lower_is_better
        value = record.get(key)
        if value is None:
            return
        self.schedule.observe_holdout_error(value if lower else -value)
        if self.best is None or (value < self.best[key] if lower else value > self.best[key]):
            test_key = key.replace("holdout_", "test_") if lower else key.removeprefix("holdout_")
            self.best = {"step": self.iteration, key: value, **({test_key: record[test_key]} if test_key in record else {})}
            if self.dist.is_main:
                save_weights(self.eval_net, self.out / ckpt.BEST_WEIGHTS, {**self.meta, "step": self.iteration, key: value})

    def should_stop(self) -> bool:
        """Whether the run ends after this step: finished, ``stop_after``, the time limit or a signal on any rank."""
        opts, it, total = self.opts, self.iteration, self.recipe.iterations
        if opts.stop_after is not None and it >= opts.stop_after and it < total:
            self.stop_reason = f"stopped after iteration {it} as asked (`stop_after`)"
        elif opts.time_limit is not None and self.elapsed() - self.elapsed_before >= opts.time_limit and it < total:
            self.stop_reason = f"time limit of {opts.time_limit:g} s reached at iteration {it}"
        if self.dist.any_true(self.stop.signal is not None, self.device) and self.stop_reason is None and it < total:
            name = signal.Signals(self.stop.signal).name if self.stop.signal is not None else "a signal on another process"
            self.stop_reason = f"interrupted by {name} at iteration {it}"
        return self.stop_reason is not None or it >= total

    def _diverged(self, loss: Tensor | float) -> None:
        last = self.out / ckpt.STATE_FILE
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint had been written yet"
        value = float(loss.detach() if isinstance(loss, Tensor) else loss)
        raise TrainingDiverged(
            f"the loss became {value} at iteration {self.iteration} (lr {self.lr:.4g}): the learning rate is probably too "
            f"high for this network and batch size (try `overrides` lr={self.lr / 10:.4g}, or a warm-up), or the data "
            f"holds NaN/Inf values; {kept}"
        )

    # -- the end --------------------------------------------------------------------------------
    def per_class(self, reason: str | None) -> dict[str, Any]:
        """Per-class accuracy of the final network (the task's :meth:`Task.per_class`), for the report and
        ``summary.json``; nothing after an interruption or before any evaluation."""
        if not self.final or (reason or "").startswith("interrupted"):
            return {}
        self.eval_net.eval()  # the run is over: the network stays in evaluation mode
        return self.task.per_class(self.eval_net)

    def summary(self, skipped: list[Any]) -> dict[str, Any]:
        """The run in one record (``summary.json``); ``skipped``: the unreadable files left out."""
        opts, seconds = self.opts, self.elapsed()
        return {
            "task": self.recipe.task, "model": self.model_name, "data": opts.data, "data_dir": opts.data_dir,
            **self.task.summary_fields(),
            "recipe": self.recipe.as_dict(), "seed": opts.seed, "processes": self.dist.world_size, "device": str(self.device),
            "steps": self.iteration, "finished": self.iteration >= self.recipe.iterations, "stop_reason": self.stop_reason,
            "final": {**self.final, **self.last_window} or None, "best": self.best, "seconds": round(seconds, 1),
            "eval_seconds": round(self.eval_seconds, 1),
            "images_per_s": round(self.train_images / self.train_seconds, 2)
            if self.train_seconds and self.train_images else None,
            "skipped_files": len(skipped),
            "weights_digest": weights_digest(self.eval_net),
        }

    def finish(self) -> dict[str, Any]:
        """Close the run: summary, curves and results table (main process), the stop said once."""
        self.task.close()
        if self.log_file is not None:
            self.log_file.close()
        skipped = self.task.skipped()
        summary, out, opts, reason = self.summary(skipped), self.out, self.opts, self.stop_reason
        summary.update(self.per_class(reason))
        if self.dist.is_main:
            self._write_summary(summary)
            plot_curves(read_metrics(out / "metrics.jsonl"), out / "curves.png",
                        f"{self.model_name} on {opts.data} ({self.recipe.name})", task=self.recipe.task)
            write_results_markdown(summary, out / "results.md", opts.command or (
                f"resnet.train.train(TrainOptions(task={self.recipe.task!r}, model={self.model_name!r}, data={opts.data!r}))"))
            if opts.progress:
                print_results(summary)
                for path, why in skipped[:10]:
                    self.say(f"skipped {path}: {why}")
                if reason and not reason.startswith("interrupted"):  # an interruption is reported once, below
                    self.say(f"{reason}; checkpoint in {out / ckpt.STATE_FILE}. continue with the same command plus `resume`")
        self.dist.barrier()
        if reason is not None and reason.startswith("interrupted"):
            raise TrainingInterrupted(f"{reason}; checkpoint written to {out / ckpt.STATE_FILE}; "
                                      "continue with the same command plus `resume`")
        return summary

    def _write_summary(self, summary: dict[str, Any]) -> None:
        """The one place ``summary.json`` is written, with the sha256 of ``best`` / ``last`` (what eval and predict
        hold the folder to, :mod:`resnet.utils.runlock`)."""
        summary["files"] = weights_digests(self.out)
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2) + "\n")
