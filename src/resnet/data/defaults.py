"""The preprocessing of a network that carries none: its stem's data config with the statistics that apply.

The sizes come from :mod:`resnet.models.data_config` (one per stem, as timm's ``_cfg()``); the mean and std from
the data set the network was trained on when it has published ones, else from the data set the stem's config
names. Weights published with their own convention never come here (:mod:`resnet.weights.registry`).
"""

from __future__ import annotations

from typing import Any

from ..models.data_config import data_config
from .preprocess import Preprocess
from .registry import dataset_stats


def default_preprocess(spec: Any = None, dataset: str | None = None) -> Preprocess:
    """``spec``'s (a :class:`~resnet.models.specs.ModelSpec`, a network, a stem name or ``None``) default input
    convention, normalised with ``dataset``'s published statistics when it has some, else the stem's."""
    config = data_config(spec)
    stats = dataset_stats(dataset) or dataset_stats(config.stats)
    if stats is None:  # a config naming a data set without published statistics is a bug in data_config.py
        raise ValueError(f"data set {config.stats!r} of the default data config has no published mean and std")
    mean, std = stats
    channels = getattr(getattr(spec, "spec", spec), "in_chans", 3)
    if channels != len(mean):
        mean, std = (0.5,) * channels, (0.5,) * channels
    return Preprocess(tuple(mean), tuple(std), config.input_size, resize=config.resize, crop=config.crop,
                      interpolation=config.interpolation)
