"""Parameter and multiply-add counts of registered networks, cached on disk.

Counting builds each network and runs one image through it (tens of seconds for all of them, with
ResNet-1202 among them); the counts depend only on the architecture, so they are kept under a key
made of the spec, the input size and the package version: in ``model_counts.json`` shipped beside
this module for the registered networks (rewrite it with ``python -m resnet.analysis.count_cache``
after changing a spec; a test checks it covers every one), and in ``<cache dir>/model-counts.json``
for anything else. ``resnet list`` then answers without importing PyTorch; a changed spec misses
both and is counted again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..models.data_config import default_input_size
from ..utils.atomic import atomic_write_text
from ..utils.paths import default_cache_dir

CACHE_FILE = "model-counts.json"
SHIPPED = Path(__file__).with_name("model_counts.json")


@dataclass(frozen=True)
class Counts:
    params: int
    macs: int
    input_size: int


def input_size_of(spec: Any) -> int:
    """The side the counts are taken at: 224 for ImageNet stems, 32 for CIFAR ones."""
    return default_input_size(spec)


def spec_key(spec: Any, input_size: int) -> str:
    from .. import __version__

    text = json.dumps({"spec": dataclasses.asdict(spec), "size": input_size, "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def model_counts(names: Sequence[str], cache_dir: Path | None = None) -> dict[str, Counts]:
    """Counts of each registered network in ``names``: from the cache, else counted (and then cached)."""
    from ..models.registry import get_spec

    path = (cache_dir or default_cache_dir()) / CACHE_FILE
    cache = _read(path)
    known = {**_read(SHIPPED), **cache}
    out: dict[str, Counts] = {}
    missing: list[tuple[str, str, int]] = []
    for name in names:
        size = input_size_of(get_spec(name))
        key = spec_key(get_spec(name), size)
        hit = known.get(key)
        if isinstance(hit, dict) and {"params", "macs"} <= hit.keys():
            out[name] = Counts(int(hit["params"]), int(hit["macs"]), size)
        else:
            missing.append((name, key, size))
    if missing:
        for name, key, size in missing:
            out[name] = _count(name, size)
            cache[key] = {"name": name, "params": out[name].params, "macs": out[name].macs}
        _write(path, cache)
    return out


def model_rows(names: Sequence[str]) -> list[dict[str, object]]:
    """One record per registered network in ``names`` (what ``resnet list`` shows): name, family, depth, input
    side, parameters and multiply-adds (from :func:`model_counts`), description."""
    from ..models.registry import get_spec

    counts = model_counts(names)
    rows = []
    for name in names:
        spec, c = get_spec(name), counts[name]
        rows.append({"name": name, "family": spec.family, "depth": spec.depth, "input": c.input_size, "params": c.params,
                     "macs": c.macs, "description": spec.description})
    return rows


def write_shipped() -> Path:
    """Count every registered network and write the table shipped with the package."""
    from ..models.registry import get_spec, list_models

    table = {}
    for name in list_models(None):
        size = input_size_of(get_spec(name))
        c = _count(name, size)
        table[spec_key(get_spec(name), size)] = {"name": name, "params": c.params, "macs": c.macs}
    atomic_write_text(SHIPPED, json.dumps(table, indent=1, sort_keys=True) + "\n")
    return SHIPPED


def _count(name: str, size: int) -> Counts:
    from ..models import create_model
    from ..utils.threads import single_threaded
    from ..models.complexity import count_macs

    with single_threaded():  # a batch-of-one pass to count: threads only add waiting
        c = count_macs(create_model(name), size)
    return Counts(c.params, c.macs, size)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, cache: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only home: counted again next time, nothing lost


if __name__ == "__main__":
    print(f"wrote {write_shipped()}")
