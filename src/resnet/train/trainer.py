"""The trainer: :func:`train` (the CLI, the experiments and torchrun call it) runs one :class:`Trainer`.

In the spirit of fb.resnet.torch's ``train.lua``: :meth:`Trainer.build` sets the run up (weights to start
from, recipe, run folder, data, network, optimizer, a checkpoint to :meth:`~Trainer.restore`), then every
batch is one :meth:`~Trainer.step`, followed when due by :meth:`~Trainer.log` and
:meth:`~Trainer.evaluate` (which checkpoints :meth:`~Trainer.state_dict`), until
:meth:`~Trainer.should_stop`; :meth:`~Trainer.finish` writes the summary, curves and results table.
How a step computes the gradient (whole batch, DDP, per-core replicas) is a strategy
(:mod:`resnet.train.strategy`); the update after it is one code path.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from ..inference.protocols import view_probabilities
from ..inference.views import eval_views
from ..utils.atomic import atomic_write_text
from ..utils.device import resolve_device
from . import checkpoint as ckpt
from . import finetune
from .console import Progress, Say, eval_line
from .data import ALL_DATASETS, EvalSet, load_train_data
from .distributed import DistContext, from_environment
from .metrics import MetricsLog, read_metrics
from .optim import build_optimizer, group_plan
from .photos import photo_preprocess
from .precision import autocast_dtype, configure_backends
from .recipes import resolve_recipe
from .replicas import CoreReplicas, replica_count
from .report import plot_curves, print_results, write_results_markdown
from .run_folder import check_resumable, prepare_folder, saved_recipe, storage_error
from .schedule import LRSchedule
from .stopping import StopFlag, TrainingDiverged, TrainingInterrupted
from .strategy import StepStrategy, WholeBatch
from .whiten import whiten_stem


@dataclass
class TrainOptions:
    model: str | None = None  # default: resnet20 for small images, resnet50 for ImageNet-layout data
    data: str = "digits"
    data_dir: str | None = None
    recipe: str | None = None  # default: by data set (digits, cifar-paper, imagenet-paper)
    overrides: dict[str, str] = field(default_factory=dict)
    out: Path | None = None  # default: runs/<model>-<data>
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
    init: str | None = None  # fine-tune from NAME[:TAG], a weights file or a run folder (train/finetune.py)
    model_overrides: dict[str, Any] = field(default_factory=dict)


def default_recipe(data: str) -> str:
    return {"digits": "digits", "imagenet": "imagenet-paper"}.get(data, "cifar-paper")


def default_model(data: str) -> str:
    return "resnet50" if data == "imagenet" else "resnet20"


def default_out(opts: TrainOptions, model_name: str | None = None) -> Path:
    """``opts.out``, else ``runs/<model>-<data>``."""
    if opts.out is not None:
        return Path(opts.out)
    return Path("runs") / f"{model_name or opts.model or default_model(opts.data)}-{opts.data}"


def train(opts: TrainOptions) -> dict[str, Any]:
    """Train per ``opts``; returns the run summary (also written to ``summary.json``)."""
    if opts.data not in ALL_DATASETS:
        raise UsageError(f"unknown data set {opts.data!r}; choose one of {', '.join(ALL_DATASETS)}")
    device = resolve_device(opts.device)
    dist = from_environment(opts.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    try:
        return Trainer(opts, device, dist).run()
    except OSError as err:  # disk full, quota, read-only or vanished folder: say so, and what survived
        raise storage_error(err, default_out(opts)) from None
    finally:
        dist.close()


# -- evaluation -------------------------------------------------------------------------------------
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
        self.iteration, self.best, self.elapsed_before = 0, None, 0.0
        self.resumed = False
        self.stop_reason: str | None = None
        self.stop = StopFlag()

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
        self.init = finetune.resolve_init_ranked(opts.init, opts.model, self.dist) if opts.init else None
        self.model_name = opts.model or (self.init.model_name if self.init is not None else default_model(opts.data))
        try:  # before the name becomes part of a folder name: "../x" must not create folders anywhere
            get_spec(self.model_name)
        except ValueError as err:
            raise UsageError(str(err)) from None
        name = opts.recipe or ("finetune" if opts.init and opts.data == "folder" else default_recipe(opts.data))
        self.recipe = resolve_recipe(name, opts.overrides)
        self.out = default_out(opts, self.model_name)
        self.say = Say(self.dist.is_main and opts.progress)
        if opts.seed < 0:
            raise UsageError(f"`seed` must be >= 0, got {opts.seed}")
        if opts.stop_after is not None and opts.stop_after < 1:
            raise UsageError(f"`stop_after` must be a positive number of iterations, got {opts.stop_after}")
        configure_backends(opts.deterministic, self.device)

    def _prepare_out(self) -> None:
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temporaries(self.out)
        self.resume = prepare_folder(self.out, resume=self.opts.resume, overwrite=self.opts.overwrite,
                                     is_main=self.dist.is_main)
        self.dist.barrier()

    def _load_data(self) -> None:
        opts, recipe = self.opts, self.recipe
        self.amp = autocast_dtype(recipe.precision, self.device)
        photo_pre = photo_preprocess(recipe, self.init.preprocess if self.init else None, "image_size" in opts.overrides) \
            if recipe.augment == "rrc" else None
        self.data = load_train_data(opts.data, opts.data_dir, recipe, seed=opts.seed, device=self.device, dist=self.dist,
                                    dtype=torch.float32, strict=opts.strict, preprocess=photo_pre)
        self.black = -torch.tensor(self.data.mean) / torch.tensor(self.data.std)  # a zero (padding) pixel, normalised

    def _build_model(self) -> None:
        from ..models import create_model

        opts, recipe, data = self.opts, self.recipe, self.data
        torch.manual_seed(opts.seed)
        try:
            model = create_model(self.model_name, num_classes=data.num_classes, in_chans=data.in_chans,
                                 **({"zero_init_residual": True} if recipe.zero_init_residual else {}), **opts.model_overrides)
        except ValueError as err:
            raise UsageError(str(err)) from None
        depth = model.spec.depth if hasattr(model.spec, "depth") else None
        self.init_note = finetune.apply_init(model, self.init, data.classes) if self.init is not None else None
        if recipe.whiten_stem and self.init is not None:
            raise UsageError("whiten_stem starts the first layer afresh, which would undo the pretrained weights "
                             "of init; set whiten_stem=0")
        self.whiten_note = whiten_stem(model, data.stream(0, 0), recipe.whiten_stem) if recipe.whiten_stem else None
        self.frozen = finetune.freeze(model, recipe.freeze)
        model.to(self.device)
        if recipe.channels_last:
            model.to(memory_format=torch.channels_last)
        fine_tune = self.init is not None or self.frozen > 0
        self.optimizer = build_optimizer(group_plan(model, recipe, pretrained=self.init is not None, split_head=fine_tune),
                                         recipe)
        self.schedule = LRSchedule(recipe, depth if isinstance(depth, int) else None)
        self.ema = None
        if recipe.ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
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
        self.replicas = replica_count(recipe.core_replicas, recipe.batch_size, device=self.device, distributed=dist.enabled,
                                      compiled=recipe.compile)
        self.cores = CoreReplicas(self.model, self.replicas) if self.replicas > 1 else None
        self.strategy: StepStrategy = self.cores if self.cores is not None else WholeBatch(net, self.scaler)
        self.eval_net: nn.Module = self.ema.module if self.ema is not None else self.model

    def _announce(self) -> None:
        opts, recipe, data, out, say = self.opts, self.recipe, self.data, self.out, self.say
        precision = str(self.amp or torch.float32).replace("torch.", "")
        if self.dist.is_main:
            header = {"model": self.model_name, "data": opts.data, "data_dir": opts.data_dir, "seed": opts.seed,
                      "device": str(self.device), "processes": self.dist.world_size, "core_replicas": self.replicas,
                      "precision": precision, "recipe": recipe.as_dict()}
            atomic_write_text(out / "recipe.json", json.dumps(header, indent=2) + "\n")
            say(f"resnet train: {self.model_name} on {opts.data} ({data.train_size} training images, {data.num_classes} "
                f"classes, {data.image_size}px) -> {out}")
            start = 'resuming at iteration ' + str(self.iteration) if self.resumed else \
                ('from ' + self.init.label if self.init else 'from scratch')
            say(f"device {self.device}, {self.dist.world_size} process(es)"
                f"{f', {self.replicas} core replicas' if self.replicas > 1 else ''}, compute {precision}, {start}")
            say(f"recipe {recipe.name} v{recipe.version}: {recipe.description}\n{recipe.describe()}")
            for note in finetune.notes(self.init_note, self.frozen, recipe, self.optimizer):
                say(note)
            if self.whiten_note:
                say(self.whiten_note)
        self.log_file = MetricsLog(out, resume_step=self.iteration if self.resumed else None,
                                   tensorboard=opts.tensorboard) if self.dist.is_main else None
        self.meta = {"classes": data.classes, "preprocess": data.preprocess.as_dict(), "dataset": data.name,
                     "data_dir": str(Path(opts.data_dir).expanduser().resolve()) if opts.data_dir else None,
                     "recipe": recipe.name, "recipe_version": recipe.version, "seed": opts.seed,
                     **({"init": self.init.label} if self.init is not None else {})}
        eval_images = sum(s.size for s in (data.holdout, data.test) if s is not None)
        self.eval_every = recipe.evaluation_interval_for(eval_images)

    def _open_windows(self) -> None:
        """Running sums of the current log and evaluation windows, kept on the device so a step never waits."""
        self.log_sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss*n, wrong, n
        self.eval_sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        self.progress = Progress(self.dist.is_main and self.opts.progress, self.recipe.iterations, self.iteration)
        self.final: dict[str, Any] = {}
        self.lr = 0.0
        self.window_start, self.window_images = time.monotonic(), 0
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
            "world_size": self.dist.world_size, "elapsed": self.elapsed(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (a checkpoint of the same settings, else a one-line error)."""
        check_resumable(self.out, saved_recipe(state), self.recipe.as_dict(), (
            ("model", state.get("model_name"), self.model_name), ("data", state.get("data"), self.opts.data),
            ("seed", state.get("seed"), self.opts.seed), ("processes", state.get("world_size"), self.dist.world_size)))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
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
            self.stop_reason = f"the run is at iteration {start}, already past --stop-after {after}; nothing to do"
        with self.stop, self.progress:
            epoch, batch = divmod(self.iteration, self.data.batches_per_epoch)
            self.train_net.train()
            while self.iteration < recipe.iterations and self.stop_reason is None:
                self._epoch(epoch, batch)
                epoch, batch = epoch + 1, 0
            if self.stop_reason is not None and self.iteration != start:
                self.dist.broadcast_buffers(self.eval_net)
                self.save_checkpoint()
            self.train_seconds += max(0.0, time.monotonic() - self.window_start) if self.window_images else 0.0
            self.train_images += self.window_images
        return self.finish()

    def _epoch(self, epoch: int, batch: int) -> None:
        """The batches of one epoch from ``batch`` on, until the run stops."""
        for x, y in self.data.stream(epoch, batch):
            self.step(x, y)
            if self.iteration % self.recipe.log_every == 0 or self.iteration == self.recipe.iterations:
                self.log()
            if self.iteration % self.eval_every == 0 or self.iteration == self.recipe.iterations:
                if not self.evaluate():
                    return
            if self.should_stop():
                return

    def step(self, x: Tensor, y: Tensor) -> None:
        """One optimizer step on the batch: the learning rate, the strategy's gradient, the update, the sums."""
        recipe, optimizer, scaler = self.recipe, self.optimizer, self.scaler
        self.lr = lr = self.schedule.lr(self.iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss, logits = self.strategy.forward_backward(x, y, amp=self.amp, label_smoothing=recipe.label_smoothing)
        if recipe.grad_clip:
            scaler.unscale_(optimizer)  # nothing to undo unless float16 scaled the loss
            nn.utils.clip_grad_norm_(self.model.parameters(), recipe.grad_clip)
        scaler.step(optimizer)  # optimizer.step(), skipped on float16 overflow
        scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.iteration += 1
        self._count(loss, logits, y)
        self.progress.advance()

    def _count(self, loss: Tensor, logits: Tensor, y: Tensor) -> None:
        n = len(y)
        self.window_images += n * self.dist.world_size
        stats = torch.stack([loss.detach().double() * n, (logits.detach().argmax(1) != y).sum().double(),
                             torch.tensor(float(n), dtype=torch.float64, device=self.device)])
        self.log_sums += stats
        self.eval_sums += stats
        if self.device.type == "cpu" and not math.isfinite(float(loss.detach())):
            self._diverged(loss)
        if self.schedule.warming_up:
            # The paper's warm-up for very deep nets ends on a measurement, so look at every step.
            err = 100.0 * float(stats[1] / stats[2])
            if self.schedule.observe_training_error(self.iteration, err):
                self.say(f"iteration {self.iteration}: training error {err:.1f}% < {self.recipe.warmup_until_error:g}%, "
                         f"warm-up over, lr {self.recipe.lr:g}")

    def log(self) -> None:
        """Write the training window's loss, error, lr and speed (every rank's share summed)."""
        sums = self.dist.all_reduce_sum(self.log_sums.clone())
        mean_loss = float(sums[0] / sums[2])
        if not math.isfinite(mean_loss):
            self._diverged(mean_loss)
        train_error = 100.0 * float(sums[1] / sums[2])
        seconds = time.monotonic() - self.window_start
        self.train_seconds += seconds
        self.train_images += self.window_images
        rate = self.window_images / max(seconds, 1e-9)
        record = {"kind": "train", "step": self.iteration, "epoch": round(self.iteration / self.data.batches_per_epoch, 4),
                  "loss": mean_loss, "error": train_error, "lr": self.lr, "images_per_s": rate,
                  "elapsed": round(self.elapsed(), 2)}
        if self.log_file is not None:
            self.log_file.write(record)
        self.progress.info(f"loss {mean_loss:.3f}  err {train_error:5.2f}%  lr {self.lr:.4g}  {rate:,.0f} img/s")
        self.log_sums.zero_()
        self.window_start, self.window_images = time.monotonic(), 0

    def evaluate(self) -> bool:
        """Score the held-out and test sets, keep the best weights, checkpoint. ``False``: Ctrl-C abandoned it."""
        eval_started = time.monotonic()
        sums = self.dist.all_reduce_sum(self.eval_sums.clone())
        self.dist.broadcast_buffers(self.eval_net)  # every rank evaluates (its share with) the same network
        window_error = 100.0 * float(sums[1] / sums[2])
        record = {"kind": "eval", "step": self.iteration, "train_error": window_error, "train_loss": float(sums[0] / sums[2])}
        abandon = None if self.dist.enabled else (lambda: self.stop.signal is not None)  # one rank may decide alone
        for evalset, key in ((self.data.holdout, "holdout"), (self.data.test, "test")):
            if evalset is None:
                record[f"{key}_error"] = record[f"{key}_loss"] = None
                continue
            scores = evaluate(self.eval_net, evalset, flip=self.recipe.test_flip, amp=self.amp, device=self.device,
                              dist=self.dist, cores=self.cores, shift=self.recipe.test_shift, fill=self.black, abandon=abandon)
            if scores is None:  # Ctrl-C: the checkpoint after the loop records this finished step
                name = signal.Signals(self.stop.signal or signal.SIGINT).name
                self.stop_reason = f"interrupted by {name} at iteration {self.iteration}"
                return False
            record[f"{key}_error"], record[f"{key}_loss"] = scores
        record["elapsed"] = round(self.elapsed(), 2)
        self.eval_sums.zero_()
        self._keep_best(record)
        self.final = {"train_error": window_error, "holdout_error": record["holdout_error"], "test_error": record["test_error"]}
        if self.log_file is not None:
            self.log_file.write(record)
        self.say(eval_line(record, self.recipe.iterations), self.progress)
        self.save_checkpoint()
        self.window_start += time.monotonic() - eval_started  # evaluation time is not training time
        return True

    def _keep_best(self, record: dict[str, Any]) -> None:
        """The lowest held-out error so far steers the schedule and is saved as ``best.safetensors``."""
        from ..models.interop import save_weights

        if record["holdout_error"] is None:
            return
        self.schedule.observe_holdout_error(record["holdout_error"])
        if self.best is None or record["holdout_error"] < self.best["holdout_error"]:
            self.best = {"step": self.iteration, "holdout_error": record["holdout_error"], "test_error": record["test_error"]}
            if self.dist.is_main:
                save_weights(self.eval_net, self.out / ckpt.BEST_WEIGHTS, {**self.meta, "step": self.iteration,
                             "holdout_error": self.best["holdout_error"]})

    def should_stop(self) -> bool:
        """Whether the run ends after this step: finished, ``stop_after``, the time limit or a signal on any rank."""
        opts, it, total = self.opts, self.iteration, self.recipe.iterations
        if opts.stop_after is not None and it >= opts.stop_after and it < total:
            self.stop_reason = f"stopped after iteration {it} as asked (--stop-after)"
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
        """Per-class accuracy (%) of the final network on the test set (else the held-out one), scored as
        :func:`evaluate` scores it, for the report and ``summary.json``; nothing after an interruption."""
        from ..inference.per_class import confusion_of, per_class_dict

        evalset = self.data.test or self.data.holdout
        if evalset is None or not self.final or (reason or "").startswith("interrupted"):
            return {}
        self.eval_net.eval()  # the run is over: the network stays in evaluation mode
        fill = 0.0 if self.black is None else self.black.to(self.device).view(-1, 1, 1)
        confusion = confusion_of(lambda x: _log_probs(self.eval_net, x, flip=self.recipe.test_flip, shift=self.recipe.test_shift,
                                                      fill=fill, amp=self.amp, device=self.device),
                                 evalset, len(self.data.classes),
                                 reduce=lambda c: c.copy_(self.dist.all_reduce_sum(c.to(self.device)).cpu()))
        return {"per_class_accuracy": per_class_dict(confusion, self.data.classes), "per_class_split": evalset.name}

    def summary(self, skipped: list[Any]) -> dict[str, Any]:
        """The run in one record (``summary.json``); ``skipped``: the unreadable files left out."""
        opts, data = self.opts, self.data
        return {
            "model": self.model_name, "data": opts.data, "data_dir": opts.data_dir, "train_images": data.train_size,
            "recipe": self.recipe.as_dict(), "seed": opts.seed, "processes": self.dist.world_size, "device": str(self.device),
            "steps": self.iteration, "finished": self.iteration >= self.recipe.iterations, "stop_reason": self.stop_reason,
            "final": self.final or None, "best": self.best, "seconds": round(self.elapsed(), 1),
            "images_per_s": round(self.train_images / self.train_seconds, 1)
            if self.train_seconds and self.train_images else None,
            "skipped_files": len(skipped),
            "weights_digest": weights_digest(self.eval_net),
            **({"init": self.init.label, "init_note": self.init_note} if self.init is not None else {}),
        }

    def finish(self) -> dict[str, Any]:
        """Close the run: summary, curves and results table (main process), the stop said once."""
        if self.cores is not None:
            self.cores.close()
        if self.log_file is not None:
            self.log_file.close()
        skipped = self.data.skipped() if self.data.skipped else []
        summary, out, opts, reason = self.summary(skipped), self.out, self.opts, self.stop_reason
        summary.update(self.per_class(reason))
        if self.dist.is_main:
            atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
            plot_curves(read_metrics(out / "metrics.jsonl"), out / "curves.png",
                        f"{self.model_name} on {opts.data} ({self.recipe.name})")
            write_results_markdown(summary, out / "results.md",
                                   opts.command or f"resnet train --model {self.model_name} --data {opts.data}")
            if opts.progress:
                print_results(summary)
                for path, why in skipped[:10]:
                    self.say(f"skipped {path}: {why}")
                if reason and not reason.startswith("interrupted"):  # an interruption is reported once, below
                    self.say(f"{reason}; checkpoint in {out / ckpt.STATE_FILE}. Continue with the same command plus --resume")
        self.dist.barrier()
        if reason is not None and reason.startswith("interrupted"):
            raise TrainingInterrupted(f"{reason}; checkpoint written to {out / ckpt.STATE_FILE}; "
                                      "continue with the same command plus `resume`")
        return summary
