"""The training loop: one function, :func:`train`, that the CLI, the experiments and torchrun all call."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ResNetError, UsageError
from ..evaluate.protocols import translate
from ..utils.atomic import atomic_write_text
from ..utils.device import resolve_device
from . import checkpoint as ckpt
from . import finetune
from .data import ALL_DATASETS, EvalSet, TrainData, load_train_data
from .distributed import DistContext, from_environment
from .metrics import MetricsLog, read_metrics
from .photos import photo_preprocess
from .recipes import Recipe, resolve_recipe
from .replicas import CoreReplicas, replica_count
from .report import plot_curves, print_results, write_results_markdown
from .schedule import LRSchedule

# Fields that may change between a run and its resumption without changing what is computed.
_RESUME_MAY_CHANGE = {"log_every", "workers", "compile", "compile_mode", "extra"}


class TrainingDiverged(ResNetError):
    """The loss became NaN or infinite."""


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


# -- precision and devices --------------------------------------------------------------------------
def cpu_has_native_bf16() -> bool:
    with contextlib.suppress(Exception):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """``None`` means float32 throughout."""
    if precision == "fp32":
        return None
    if device.type == "cpu":
        if precision == "fp16":
            raise UsageError("precision fp16 is for GPUs; on CPU use bf16 or fp32")
        if precision == "bf16" or cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# -- interruption -----------------------------------------------------------------------------------
class StopFlag:
    """First Ctrl-C / SIGTERM asks the loop to checkpoint and stop; a second one stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# -- evaluation -------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(net: nn.Module, evalset: EvalSet, *, flip: bool, amp: torch.dtype | None, device: torch.device,
             dist: DistContext, cores: CoreReplicas | None = None, shift: int = 0,
             fill: Tensor | None = None, abandon: Callable[[], bool] | None = None) -> tuple[float, float] | None:
    """Top-1 error (%) and mean cross-entropy over the whole set (every rank's share summed).

    ``abandon`` is asked before every batch; when it says so the evaluation stops and returns ``None``
    (Ctrl-C: the run stops within a batch instead of after the whole set).

    ``flip`` / ``shift`` average the softmax over the mirror and over copies moved ``shift`` pixels
    diagonally both ways, the border set to ``fill`` (per channel: the normalised value of a black
    pixel, which is what zero padding gives in training). With ``cores``, each batch is split over the
    CPU cores, one thread per slice (eval mode is stateless).
    """
    was_training = net.training
    net.eval()
    fill_value: float | Tensor = 0.0 if fill is None else fill.to(device).view(-1, 1, 1)

    def log_probs_of(x: Tensor) -> Tensor:
        views = [x, x.flip(3)] if flip else [x]
        if shift:
            views = [w for v in views for w in (v, translate(v, shift, shift, fill_value), translate(v, -shift, -shift, fill_value))]
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            if len(views) == 1:
                return net(x).float().log_softmax(1)
            probs = sum(net(v).float().softmax(1) for v in views) / len(views)
        return probs.clamp_min(1e-12).log()

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


# -- the run ----------------------------------------------------------------------------------------
def _param_groups(model: nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
    if recipe.decay_bn_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _check_resumable(state: dict[str, Any], recipe: Recipe, model_name: str, data: str, seed: int, world: int, out: Path) -> None:
    saved = dict(state.get("recipe") or {})
    now = recipe.as_dict()
    # A field added to Recipe after the run started holds its default there.
    then = {f.name: f.default for f in dataclasses.fields(Recipe) if f.default is not dataclasses.MISSING} | saved
    differs = [f"{k}: {then.get(k)!r} then, {now[k]!r} now" for k in now
               if k not in _RESUME_MAY_CHANGE and then.get(k) != now[k]]
    for key, then, current in (("model", state.get("model_name"), model_name), ("data", state.get("data"), data),
                               ("seed", state.get("seed"), seed), ("processes", state.get("world_size"), world)):
        if then != current:
            differs.append(f"{key}: {then!r} then, {current!r} now")
    if differs:
        raise UsageError(
            f"{out} holds a run made with other settings ({'; '.join(differs)}); resume with the same settings, "
            "or train into another --out"
        )


def _prepare_folder(out: Path, opts: TrainOptions, is_main: bool) -> bool:
    """Returns whether to resume; refuses to overwrite a run unless asked."""
    has_state = (out / ckpt.STATE_FILE).is_file()
    if opts.resume:
        return has_state
    if has_state or (out / "metrics.jsonl").is_file():
        if not opts.overwrite:
            raise UsageError(f"{out} already holds a training run; pass --resume to continue it, --overwrite to start "
                             "it again, or choose another --out")
        if is_main:
            for name in (ckpt.STATE_FILE, ckpt.LAST_WEIGHTS, ckpt.BEST_WEIGHTS, "metrics.jsonl", "summary.json"):
                with contextlib.suppress(FileNotFoundError):
                    (out / name).unlink()
    return False


def train(opts: TrainOptions) -> dict[str, Any]:
    """Train per ``opts``; returns the run summary (also written to ``summary.json``)."""
    if opts.data not in ALL_DATASETS:
        raise UsageError(f"unknown data set {opts.data!r}; choose one of {', '.join(ALL_DATASETS)}")
    device = resolve_device(opts.device)
    dist = from_environment(opts.device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    try:
        return _train(opts, device, dist)
    except OSError as err:  # disk full, quota, read-only or vanished folder: say so, and what survived
        raise _storage_error(err, opts) from None
    finally:
        dist.close()


class TrainingStorageError(ResNetError):
    """Writing the run folder failed (disk full, ...); the last complete checkpoint is still there."""


def _storage_error(err: OSError, opts: TrainOptions) -> TrainingStorageError:
    import errno as errno_names

    out = Path(opts.out) if opts.out is not None else Path("runs") / f"{opts.model or default_model(opts.data)}-{opts.data}"
    what = err.strerror or str(err) or type(err).__name__
    if err.errno == errno_names.ENOSPC:
        what = "no space left on device (the disk is full)"
    where = f" ({err.filename})" if err.filename else ""
    saved = "no checkpoint had been written yet"
    with contextlib.suppress(Exception):
        state = ckpt.load_state(out)
        if state is not None:
            saved = f"the last checkpoint, {out / ckpt.STATE_FILE} at iteration {state['step']}, is intact"
    return TrainingStorageError(f"training stopped: {what}{where}; {saved}. Free some space (or fix the folder) and "
                                "continue with the same command plus --resume")


def _train(opts: TrainOptions, device: torch.device, dist: DistContext) -> dict[str, Any]:
    from ..models import create_model, get_spec
    from ..models.interop import save_weights

    started = time.monotonic()
    init = finetune.resolve_init_ranked(opts.init, opts.model, dist) if opts.init else None
    model_name = opts.model or (init.model_name if init is not None else default_model(opts.data))
    try:  # before the name becomes part of a folder name: "../x" must not create folders anywhere
        get_spec(model_name)
    except ValueError as err:
        raise UsageError(str(err)) from None
    recipe = resolve_recipe(opts.recipe or ("finetune" if opts.init and opts.data == "folder" else default_recipe(opts.data)),
                            opts.overrides)
    out = Path(opts.out) if opts.out is not None else Path("runs") / f"{model_name}-{opts.data}"
    say = _Say(dist.is_main and opts.progress)
    if opts.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {opts.seed}")
    if opts.stop_after is not None and opts.stop_after < 1:
        raise UsageError(f"--stop-after must be a positive number of iterations, got {opts.stop_after}")
    if opts.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temporaries(out)
    resume = _prepare_folder(out, opts, dist.is_main)
    dist.barrier()

    amp = autocast_dtype(recipe.precision, device)
    photo_pre = photo_preprocess(recipe, init.preprocess if init else None, "image_size" in opts.overrides) \
        if recipe.augment == "rrc" else None
    data = load_train_data(opts.data, opts.data_dir, recipe, seed=opts.seed, device=device, dist=dist,
                           dtype=torch.float32, strict=opts.strict, preprocess=photo_pre)
    black = -torch.tensor(data.mean) / torch.tensor(data.std)  # a zero (padding) pixel after normalisation
    torch.manual_seed(opts.seed)
    try:
        model = create_model(model_name, num_classes=data.num_classes, in_chans=data.in_chans,
                             **({"zero_init_residual": True} if recipe.zero_init_residual else {}), **opts.model_overrides)
    except ValueError as err:
        raise UsageError(str(err)) from None
    depth = model.spec.depth if hasattr(model.spec, "depth") else None
    init_note = finetune.apply_init(model, init, data.classes) if init is not None else None
    frozen = finetune.freeze(model, recipe.freeze)
    model.to(device)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    groups = _param_groups(model, recipe) if init is None and not frozen else \
        finetune.param_groups(finetune.group_plan(model, recipe, pretrained=init is not None))
    optimizer = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay)
    schedule = LRSchedule(recipe, depth if isinstance(depth, int) else None)
    ema = None
    if recipe.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None

    step, best, elapsed_before = 0, None, 0.0
    state = ckpt.load_state(out) if resume else None
    if state is not None:
        _check_resumable(state, recipe, model_name, opts.data, opts.seed, dist.world_size, out)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["cpu"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None and dist.world_size == 1:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        step, best, elapsed_before = int(state["step"]), state.get("best"), float(state.get("elapsed", 0.0))

    if recipe.sync_bn and dist.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    train_net: nn.Module = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        train_net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if recipe.compile:
        train_net = torch.compile(train_net, mode=None if recipe.compile_mode == "default" else recipe.compile_mode)
    replicas = replica_count(recipe.core_replicas, recipe.batch_size, device=device, distributed=dist.enabled,
                             compiled=recipe.compile)
    cores = CoreReplicas(model, replicas) if replicas > 1 else None
    eval_net: nn.Module = ema.module if ema is not None else model

    if dist.is_main:
        header = {"model": model_name, "data": opts.data, "data_dir": opts.data_dir, "seed": opts.seed,
                  "device": str(device), "processes": dist.world_size, "core_replicas": replicas, "precision": str(amp or torch.float32).replace("torch.", ""),
                  "recipe": recipe.as_dict()}
        atomic_write_text(out / "recipe.json", json.dumps(header, indent=2) + "\n")
        say(f"resnet train: {model_name} on {opts.data} ({data.train_size} training images, {data.num_classes} classes, "
            f"{data.image_size}px) -> {out}")
        say(f"device {device}, {dist.world_size} process(es)"
            f"{f', {replicas} core replicas' if replicas > 1 else ''}, compute {header['precision']}, "
            f"{'resuming at iteration ' + str(step) if state else ('from ' + init.label if init else 'from scratch')}")
        say(f"recipe {recipe.name} v{recipe.version}: {recipe.description}\n{recipe.describe()}")
        for note in finetune.notes(init_note, frozen, recipe, optimizer):
            say(note)
    log = MetricsLog(out, resume_step=step if state else None, tensorboard=opts.tensorboard) if dist.is_main else None

    meta = {"classes": data.classes, "preprocess": data.preprocess.as_dict(), "dataset": data.name,
            "data_dir": str(Path(opts.data_dir).expanduser().resolve()) if opts.data_dir else None, "recipe": recipe.name,
            "recipe_version": recipe.version, "seed": opts.seed, **({"init": init.label} if init is not None else {})}
    eval_images = sum(s.size for s in (data.holdout, data.test) if s is not None)
    eval_every = recipe.evaluation_interval_for(eval_images)

    def save_checkpoint(current_step: int, elapsed: float) -> None:
        if not dist.is_main:
            return
        rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
        # Weights first: a kill between the two files then leaves weights at least as new as the state,
        # never a resumable state without a last.safetensors beside it.
        save_weights(eval_net, out / ckpt.LAST_WEIGHTS, {**meta, "step": current_step})
        ckpt.save_state(out, {
            "step": current_step, "model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
            "schedule": schedule.state_dict(), "rng": rng, "best": best, "recipe": recipe.as_dict(),
            "model_name": model_name, "data": opts.data, "seed": opts.seed, "world_size": dist.world_size,
            "elapsed": elapsed,
        })

    # Running sums of the current log and evaluation windows, kept on the device so a step never waits.
    log_sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss*n, wrong, n
    eval_sums = torch.zeros(3, dtype=torch.float64, device=device)
    on_cpu = device.type == "cpu"
    progress = _Progress(dist.is_main and opts.progress, recipe.iterations, step)
    last_train_error: float | None = None
    final: dict[str, Any] = {}
    stop_reason: str | None = None
    window_start, window_images = time.monotonic(), 0
    train_seconds, train_images = 0.0, 0
    run_start = time.monotonic()

    def elapsed_now() -> float:
        return elapsed_before + time.monotonic() - run_start

    # Evaluations give way to Ctrl-C (each rank decides alone only when there is one rank).
    start_step = step
    abandon = None if dist.enabled else (lambda: stop.signal is not None)
    if opts.stop_after is not None and step >= opts.stop_after and step < recipe.iterations:
        stop_reason = f"the run is at iteration {step}, already past --stop-after {opts.stop_after}; nothing to do"
    with StopFlag() as stop, progress:
        epoch, batch = divmod(step, data.batches_per_epoch)
        train_net.train()
        while step < recipe.iterations and stop_reason is None:
            for x, y in data.stream(epoch, batch):
                lr = schedule.lr(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                if cores is not None:
                    optimizer.zero_grad(set_to_none=True)
                    loss, logits = cores.forward_backward(x, y, amp=amp, label_smoothing=recipe.label_smoothing)
                    if recipe.grad_clip:
                        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                    optimizer.step()
                else:
                    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                        logits = train_net(x)
                        loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler.scale(loss).backward()
                        if recipe.grad_clip:
                            scaler.unscale_(optimizer)
                            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss.backward()
                        if recipe.grad_clip:
                            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                        optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                n = len(y)
                window_images += n * dist.world_size
                stats = torch.stack([loss.detach().double() * n, (logits.detach().argmax(1) != y).sum().double(),
                                     torch.tensor(float(n), dtype=torch.float64, device=device)])
                log_sums += stats
                eval_sums += stats
                if on_cpu and not math.isfinite(float(loss.detach())):
                    _diverged(step, lr, out, loss)
                if schedule.warming_up:
                    # The paper's warm-up for very deep nets ends on a measurement, so look at every step.
                    err = 100.0 * float(stats[1] / stats[2])
                    if schedule.observe_training_error(step, err):
                        say(f"iteration {step}: training error {err:.1f}% < {recipe.warmup_until_error:g}%, warm-up over, "
                            f"lr {recipe.lr:g}")
                progress.advance()

                if step % recipe.log_every == 0 or step == recipe.iterations:
                    sums = dist.all_reduce_sum(log_sums.clone())
                    mean_loss = float(sums[0] / sums[2])
                    if not math.isfinite(mean_loss):
                        _diverged(step, lr, out, mean_loss)
                    last_train_error = 100.0 * float(sums[1] / sums[2])
                    seconds = time.monotonic() - window_start
                    train_seconds += seconds
                    train_images += window_images
                    rate = window_images / max(seconds, 1e-9)
                    record = {"kind": "train", "step": step, "epoch": round(step / data.batches_per_epoch, 4),
                              "loss": mean_loss, "error": last_train_error, "lr": lr, "images_per_s": rate,
                              "elapsed": round(elapsed_now(), 2)}
                    if log is not None:
                        log.write(record)
                    progress.info(f"loss {mean_loss:.3f}  err {last_train_error:5.2f}%  lr {lr:.4g}  {rate:,.0f} img/s")
                    log_sums.zero_()
                    window_start, window_images = time.monotonic(), 0

                if step % eval_every == 0 or step == recipe.iterations:
                    eval_started = time.monotonic()
                    sums = dist.all_reduce_sum(eval_sums.clone())
                    dist.broadcast_buffers(eval_net)  # every rank evaluates (its share with) the same network
                    window_error = 100.0 * float(sums[1] / sums[2])
                    record = {"kind": "eval", "step": step, "train_error": window_error,
                              "train_loss": float(sums[0] / sums[2])}
                    abandoned = False
                    for evalset, key in ((data.holdout, "holdout"), (data.test, "test")):
                        if evalset is None:
                            record[f"{key}_error"] = record[f"{key}_loss"] = None
                            continue
                        scores = evaluate(eval_net, evalset, flip=recipe.test_flip, amp=amp, device=device, dist=dist,
                                          cores=cores, shift=recipe.test_shift, fill=black, abandon=abandon)
                        if scores is None:
                            abandoned = True
                            break
                        record[f"{key}_error"], record[f"{key}_loss"] = scores
                    if abandoned:  # Ctrl-C: the checkpoint below the loop records this finished step
                        stop_reason = f"interrupted by {signal.Signals(stop.signal or signal.SIGINT).name} at iteration {step}"
                        break
                    record["elapsed"] = round(elapsed_now(), 2)
                    eval_sums.zero_()
                    if record["holdout_error"] is not None:
                        schedule.observe_holdout_error(record["holdout_error"])
                        if best is None or record["holdout_error"] < best["holdout_error"]:
                            best = {"step": step, "holdout_error": record["holdout_error"], "test_error": record["test_error"]}
                            if dist.is_main:
                                save_weights(eval_net, out / ckpt.BEST_WEIGHTS, {**meta, "step": step,
                                             "holdout_error": best["holdout_error"]})
                    final = {"train_error": window_error, "holdout_error": record["holdout_error"],
                             "test_error": record["test_error"]}
                    if log is not None:
                        log.write(record)
                    say(_eval_line(record, recipe.iterations), progress)
                    save_checkpoint(step, elapsed_now())
                    window_start += time.monotonic() - eval_started  # evaluation time is not training time

                if opts.stop_after is not None and step >= opts.stop_after and step < recipe.iterations:
                    stop_reason = f"stopped after iteration {step} as asked (--stop-after)"
                elif opts.time_limit is not None and elapsed_now() - elapsed_before >= opts.time_limit and step < recipe.iterations:
                    stop_reason = f"time limit of {opts.time_limit:g} s reached at iteration {step}"
                if dist.any_true(stop.signal is not None, device) and stop_reason is None and step < recipe.iterations:
                    name = signal.Signals(stop.signal).name if stop.signal is not None else "a signal on another process"
                    stop_reason = f"interrupted by {name} at iteration {step}"
                if stop_reason is not None or step >= recipe.iterations:
                    break
            epoch, batch = epoch + 1, 0
        if stop_reason is not None and step != start_step:
            dist.broadcast_buffers(eval_net)
            save_checkpoint(step, elapsed_now())
        train_seconds += max(0.0, time.monotonic() - window_start) if window_images else 0.0
        train_images += window_images

    if cores is not None:
        cores.close()
    if log is not None:
        log.close()
    skipped = data.skipped() if data.skipped else []
    summary = {
        "model": model_name, "data": opts.data, "data_dir": opts.data_dir, "train_images": data.train_size,
        "recipe": recipe.as_dict(), "seed": opts.seed, "processes": dist.world_size, "device": str(device),
        "steps": step, "finished": step >= recipe.iterations, "stop_reason": stop_reason,
        "final": final or None, "best": best, "seconds": round(elapsed_now(), 1),
        "images_per_s": round(train_images / train_seconds, 1) if train_seconds and train_images else None,
        "skipped_files": len(skipped),
        "weights_digest": weights_digest(eval_net),
        **({"init": init.label, "init_note": init_note} if init is not None else {}),
    }
    if dist.is_main:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        plot_curves(read_metrics(out / "metrics.jsonl"), out / "curves.png", f"{model_name} on {opts.data} ({recipe.name})")
        write_results_markdown(summary, out / "results.md", opts.command or f"resnet train --model {model_name} --data {opts.data}")
        if opts.progress:
            print_results(summary)
            for path, reason in skipped[:10]:
                say(f"skipped {path}: {reason}")
            if stop_reason and not stop_reason.startswith("interrupted"):  # an interruption is reported once, below
                say(f"{stop_reason}; checkpoint in {out / ckpt.STATE_FILE}. Continue with the same command plus --resume")
    dist.barrier()
    if stop_reason is not None and stop_reason.startswith("interrupted"):
        raise TrainingInterrupted(f"{stop_reason}; checkpoint written to {out / ckpt.STATE_FILE}; "
                                  "continue with the same command plus --resume")
    return summary


class TrainingInterrupted(ResNetError):
    exit_code = 130


def weights_digest(net: nn.Module) -> str:
    """SHA-256 of every tensor of the state dict in order: equal digests mean bit-identical weights."""
    import hashlib

    h = hashlib.sha256()
    for key, value in net.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _diverged(step: int, lr: float, out: Path, loss: Any) -> None:
    last = out / ckpt.STATE_FILE
    kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint had been written yet"
    raise TrainingDiverged(
        f"the loss became {float(loss.detach() if isinstance(loss, torch.Tensor) else loss)} at iteration {step} (lr {lr:.4g}): the learning rate is probably too high for "
        f"this network and batch size (try --set lr={lr / 10:.4g}, or a warm-up), or the data holds NaN/Inf values; {kept}"
    )


def _eval_line(record: dict[str, Any], total: int) -> str:
    parts = [f"iteration {record['step']}/{total}: train err {record['train_error']:.2f}%"]
    for key in ("holdout", "test"):
        if record.get(f"{key}_error") is not None:
            parts.append(f"{key} err {record[f'{key}_error']:.2f}% (loss {record[f'{key}_loss']:.3f})")
    return ", ".join(parts)


class _Say:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, message: str, progress: "_Progress | None" = None) -> None:
        if not self.enabled:
            return
        if progress is not None and progress.live is not None:
            progress.live.console.print(message)
        else:
            print(message, flush=True)


class _Progress:
    """A rich progress bar on a terminal; nothing extra in logs (evaluation lines are printed anyway)."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.live = None
        self._task = None
        self._count = 0
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.live = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.fields[info]}"), transient=False)
            self._task = self.live.add_task("train", total=total, completed=start, info="")

    def __enter__(self) -> "_Progress":
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.stop()

    def advance(self) -> None:
        if self.live is not None:
            self.live.advance(self._task)

    def info(self, text: str) -> None:
        if self.live is not None:
            self.live.update(self._task, info=text)
