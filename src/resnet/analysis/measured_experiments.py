"""Fig. 7 (layer responses) and Sec. 4.1 (gradient flow) as functions of a typed config: each measures
networks directly and writes figures, a markdown table and the raw JSON into ``out``."""

from __future__ import annotations

from typing import Any

from ..data.load import open_arrays
from ..data.registry import sample_folder
from ..errors import UsageError
from ..utils.device import resolve_device
from .configs import GradientsConfig, ExperimentResult, ResponsesConfig, check_positive
from .experiments import gradients_markdown, responses_markdown, write_json, write_text
from .gradients import gradient_study
from .plots import plot_gradients, plot_responses
from .responses import profile_member, resolve_response_sources
from .runs.plans import ProgressFn


def run_gradients(config: GradientsConfig, *, progress: ProgressFn | None = None) -> ExperimentResult:
    """Per-layer gradient norms of plain and residual nets at initialisation and after ``config.steps`` steps."""
    depths = config.check()
    device = str(resolve_device(config.device))
    dataset, description = gradient_data(config, (config.steps + 1) * config.batch_size)
    if len(dataset) < config.batch_size:
        raise UsageError(f"`batch_size` {config.batch_size} is larger than the {len(dataset)} training images")
    runs = gradient_study(
        dataset, depths, steps=config.steps, batch_size=config.batch_size, lr=config.lr, lr_no_bn=config.lr_no_bn,
        no_bn=config.no_bn, warmup=config.warmup, seed=config.seed, device=device, progress=progress,
    )
    out = config.out
    data = {"data": description, "steps": config.steps, "batch_size": config.batch_size, "seed": config.seed,
            "runs": [r.as_dict() for r in runs]}
    files = (
        plot_gradients(runs, out / "gradients.png", "weight"),
        plot_gradients(runs, out / "gradients_backprop.png", "backprop"),
        write_text(out / "gradients.md", gradients_markdown(runs, description, config.steps, config.batch_size)),
        write_json(out / "gradients.json", data),
    )
    return ExperimentResult(files, data)


def gradient_data(config: GradientsConfig, needed: int) -> tuple[Any, str]:
    """The training images of a gradient study (an :class:`~resnet.data.ArrayDataset`) and their description.

    A named data set is read whole (decoded once, cached); a bare image folder only for the ``needed``
    images, drawn at random.
    """
    if config.data is None and config.data_dir is None:
        raise UsageError("name the training data with `data` NAME (cifar10, digits, ...) or `data_dir` PATH (an image folder)")
    if config.data is None:
        assert config.data_dir is not None
        dataset = sample_folder(config.data_dir, "train", needed, seed=config.seed)
        return dataset, dataset.source
    where = f" from {config.data_dir}" if config.data_dir else ""
    return open_arrays(config.data, "train", config.data_dir), f"{config.data} training split{where}"


def run_responses(config: ResponsesConfig, *, progress: ProgressFn | None = None) -> ExperimentResult:
    """Std of every 3x3 layer's response after BN, for each network of ``config.sources`` (Fig. 7)."""
    from ..evaluate.data import open_eval_data

    check_positive("limit", config.limit)
    check_positive("batch_size", config.batch_size)
    device = str(resolve_device(config.device))
    members = resolve_response_sources(list(config.sources), list(config.weights))
    data = open_eval_data(config.data, config.data_dir, config.split, limit=config.limit,
                          channels=members[0][1].preprocess.channels)
    profiles = []
    for label, member in members:
        if progress:
            progress(f"measuring {label} on {len(data)} images")
        profiles.append(profile_member(member, data, label=label, batch_size=config.batch_size, device=device))
    out = config.out
    payload = {"data": data.description, "images": len(data), "profiles": [p.as_dict() for p in profiles]}
    files = (
        plot_responses(profiles, out / "responses.png"),
        write_text(out / "responses.md", responses_markdown(profiles, data.description)),
        write_json(out / "responses.json", payload),
    )
    return ExperimentResult(files, payload)
