"""``engine="auto"``: measure the engines able to run a mode at one batch shape, keep the fastest that
agrees with the float model, and remember the choice per machine.

The rule (:func:`choose`): an engine is eligible when its top-1 predictions agree with the float
model's on the check images (the calibration images, else ``example_input``) at least as often as ours
do, less :data:`AGREEMENT_TOLERANCE` points (at least one image's worth, so a handful of check images
cannot rule an engine out on a single near-tie); ours (the reference) is always eligible. The
fastest eligible engine (median of interleaved calls at the batch shape) wins. 0.5 points is the
accuracy budget the project sets int8 against fp32 (issue 6), so an engine cannot buy speed with
more disagreement than that beyond what ours already has.

The choice is cached in ``<cache dir>/engines.json`` (:func:`resnet.utils.paths.default_cache_dir`),
keyed by the CPU's flags, the thread count, the batch shape, the mode, the engine family asked for, the
network (class, name and a digest of its weights) and the torch / ONNX Runtime / OpenVINO versions;
a call with the same key reads it back and measures nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import ResNetError
from ..utils.atomic import atomic_write_text
from ..utils.cpu import cpu_flags
from ..utils.paths import default_cache_dir
from .candidate import Candidate

AGREEMENT_TOLERANCE = 0.5  # points
CACHE_FILE = "engines.json"
CACHE_ENV = "RESNET_ENGINE_CACHE"  # a file of its own for the choices, e.g. a test session's
MEASURE_BUDGET_S = 10.0  # timed rounds take about this long in all (5 rounds at least, 15 at most)
MAX_CHECK_IMAGES = 256
MIN_ROUNDS = 5  # 3 rounds picked the slower engine of two on a machine at load 8 (ResNet-50 batch 32 fp32)


@dataclass
class Measurement:
    """One engine as measured: median seconds per call at the batch shape and % top-1 agreement with float."""

    label: str
    seconds: float | None = None
    agreement: float | None = None
    error: str | None = None


def choose(measured: Sequence[Measurement], images: int, reference: str | None = None) -> str:
    """The fastest eligible engine of ``measured`` (see the module docstring for the rule)."""
    ok = [m for m in measured if m.error is None and m.seconds is not None and m.agreement is not None]
    if not ok:
        raise ResNetError("no engine ran: " + "; ".join(f"{m.label}: {m.error}" for m in measured))
    ref = next((m for m in ok if m.label == reference), None)
    base = ref.agreement if ref is not None else max(m.agreement for m in ok)  # type: ignore[type-var]
    floor = base - max(AGREEMENT_TOLERANCE, 100.0 / max(1, images))  # type: ignore[operator]
    eligible = [m for m in ok if m is ref or m.agreement >= floor]  # type: ignore[operator]
    return min(eligible, key=lambda m: m.seconds).label  # type: ignore[arg-type, return-value]


def time_interleaved(fns: Sequence[Callable[[Tensor], object]], x: Tensor, repeats: int) -> list[list[float]]:
    """Seconds per call of each of ``fns`` on ``x``, one call of each per round (a load spike hits all alike)."""
    times: list[list[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for _ in range(repeats):
            for fn, out in zip(fns, times):
                start = time.perf_counter()
                fn(x)
                out.append(time.perf_counter() - start)
    return times


def agreement(runner: Callable[[Tensor], Tensor], images: Tensor, reference: Tensor, batch: int = 64) -> float:
    """% of ``images`` on which ``runner``'s top-1 equals ``reference`` (the float model's top-1)."""
    with torch.inference_mode():
        preds = torch.cat([runner(chunk).argmax(1) for chunk in images.split(batch)])
    return 100.0 * (preds == reference).float().mean().item()


def check_images(calibration: list[Tensor] | None, example_input: Tensor) -> Tensor:
    """The images agreement is judged on: the calibration images (up to :data:`MAX_CHECK_IMAGES`), else the example."""
    if not calibration:
        return example_input.float()
    return torch.cat(calibration)[:MAX_CHECK_IMAGES].float()


def measure(cands: Sequence[Candidate], model: nn.Module, example: Tensor, check: Tensor) -> tuple[list[Measurement], dict[str, nn.Module]]:
    """Build each candidate, judge its agreement on ``check``, then time the survivors interleaved on ``example``."""
    with torch.inference_mode():
        reference = model.eval()(check).argmax(1)
    measured, runners, warm = [], {}, 0.0
    for cand in cands:
        m = Measurement(cand.label)
        try:
            runner = cand.build()
            start = time.perf_counter()
            with torch.inference_mode():
                runner(example)
            warm += time.perf_counter() - start
            m.agreement = agreement(runner, check, reference)
            runners[cand.label] = runner
        except (ResNetError, RuntimeError, ValueError, NotImplementedError, ImportError) as err:
            m.error = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        measured.append(m)
    repeats = max(MIN_ROUNDS, min(15, int(MEASURE_BUDGET_S / max(warm, 1e-6))))
    times = time_interleaved([runners[m.label] for m in measured if m.error is None], example, repeats)
    for m, t in zip([m for m in measured if m.error is None], times):
        m.seconds = statistics.median(t)
    return measured, runners


def weights_digest(model: nn.Module) -> str:
    """A digest of every parameter and buffer (names, shapes, dtypes and values)."""
    h = hashlib.blake2b(digest_size=16)
    for name, value in model.state_dict().items():
        h.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
        h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cache_key(model: nn.Module, mode: str, shape: Sequence[int], threads: int, engine: str) -> dict[str, object]:
    """What a cached choice depends on (see the module docstring)."""
    flags = cpu_flags()
    cpu = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16] if flags else platform.processor() or platform.machine()
    return {
        "cpu_flags": cpu, "threads": threads, "shape": [int(s) for s in shape], "mode": mode, "engine": engine,
        "network": f"{type(model).__name__}:{getattr(model, 'model_name', '')}", "weights": weights_digest(model),
        "versions": {"torch": torch.__version__, "onnxruntime": _version("onnxruntime"), "openvino": _version("openvino")},
    }


def _key_id(key: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent or damaged: a cache, so start afresh
        return {}
    return data if isinstance(data, dict) else {}


def cache_path(cache_dir: Path | None = None) -> Path:
    """``cache_dir``/engines.json; by default ``$RESNET_ENGINE_CACHE`` (a file) where set, else in the cache folder."""
    if cache_dir is None and os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return (cache_dir or default_cache_dir()) / CACHE_FILE


def read_choice(key: dict[str, object], cache_dir: Path | None = None) -> str | None:
    """The engine cached for ``key``, or None."""
    entry = _read_cache(cache_path(cache_dir)).get(_key_id(key))
    return entry.get("engine") if isinstance(entry, dict) else None


def write_choice(key: dict[str, object], label: str, measured: Sequence[Measurement], cache_dir: Path | None = None) -> Path:
    """Add the choice for ``key`` (with what was measured, for the curious) to the cache file."""
    path = cache_path(cache_dir)
    data = _read_cache(path)
    data[_key_id(key)] = {
        "engine": label, "key": key, "measured": [asdict(m) for m in measured],
        "agreement_tolerance_points": AGREEMENT_TOLERANCE, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def select_engine(
    model: nn.Module, mode: str, engine: str, cands: Sequence[Candidate], *, example_input: Tensor | None,
    calibration: list[Tensor] | None, threads: int, say: Callable[[str], None], cache_dir: Path | None = None,
) -> nn.Module:
    """The engine of ``cands`` to run ``mode``: the only one, the cached choice, or the measured one (then cached).

    ``cands`` are already narrowed to the family asked for; without ``example_input`` (no batch shape to
    measure at) the first of them runs.
    """
    if len(cands) == 1 or example_input is None:
        return cands[0].build()
    key = cache_key(model, mode, example_input.shape, threads, engine)
    cached = read_choice(key, cache_dir)
    chosen = next((c for c in cands if c.label == cached), None)
    if chosen is not None:
        return chosen.build()
    say(f"measuring {len(cands)} engines for {mode} at input {list(example_input.shape)} "
        f"({', '.join(c.label for c in cands)}); the choice is cached in {cache_path(cache_dir)}")
    check = check_images(calibration, example_input)
    measured, runners = measure(cands, model, example_input, check)
    for m in measured:
        if m.error is not None:
            say(f"skipped {m.label} for {mode}: {m.error}")
    label = choose(measured, len(check), reference=cands[0].label)
    write_choice(key, label, measured, cache_dir)
    return runners[label]
