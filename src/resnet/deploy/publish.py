"""``resnet weights publish``: a run folder (or checkpoint) as a Hugging Face Hub folder, and its upload.

The folder holds, each written atomically, without the network:

- ``config.json``: timm-style keys that other tools read (``architecture``, ``num_classes``, ``label_names``,
  ``pretrained_cfg`` with ``input_size``, ``crop_pct``, ``mean``, ``std``, ``interpolation``) and the ``resnet``
  section, the metadata our checkpoints carry (``spec``: the :class:`~resnet.models.specs.ModelSpec`, ``model``,
  ``classes``, ``preprocess``, ``dataset``, ``step``) plus the run's results;
- ``model.safetensors``: the weights, written as our checkpoints are (so the file alone is one of them too);
- ``README.md``: the model card: YAML front matter (``library_name``, ``license``, ``tags``, ``datasets``,
  ``metrics``), the run's results, its data and preprocessing, and how to load it.

:func:`push` uploads such a folder with ``huggingface_hub`` (a token and the network needed). The folder
loads back with ``resnet.create_model("hf-hub:owner/name", pretrained=True)`` (:mod:`resnet.weights.hub`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ResNetError, UsageError
from ..inference.load import load_network
from ..inference.network import Network
from ..utils.atomic import atomic_write_text
from ..weights.hub import CARD_FILE, CONFIG_FILE, HUB_PREFIX, LIBRARY_NAME, WEIGHTS_FILE, repo_id

DEFAULT_LICENSE = "other"  # the Hub's value for "not one of the listed licences": the publisher should name one
SUMMARY_FILE = "summary.json"  # what a finished run writes (resnet.train.trainer)


def _results(run: Path) -> dict[str, Any]:
    """The run's summary (``final`` and ``best`` errors, data, steps), ``{}`` for a bare checkpoint."""
    summary = run / SUMMARY_FILE if run.is_dir() else run.parent / SUMMARY_FILE
    try:
        data = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    keys = ("data", "train_images", "steps", "finished", "final", "best", "seed", "init")
    return {k: data[k] for k in keys if k in data} | ({"recipe": data["recipe"].get("name")} if isinstance(data.get("recipe"), dict) else {})


def hub_config(net: Network, results: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` of ``net``: timm-style keys and our ``resnet`` section."""
    from dataclasses import asdict

    pre = net.preprocess
    spec = {k: v for k, v in asdict(net.model.spec).items() if k != "extra"}
    ours = {"format": "resnet", "version": 1, "model": net.model_name, "spec": spec, "classes": net.classes,
            "preprocess": pre.as_dict(), **{k: net.metadata[k] for k in ("dataset", "recipe", "step") if k in net.metadata},
            "results": results}
    return {
        "architecture": net.model_name, "num_classes": net.num_classes, "num_features": int(net.model.fc.in_features),
        "global_pool": "avg", **({"label_names": net.classes} if net.classes else {}),
        "pretrained_cfg": {"input_size": [pre.channels, pre.crop_size, pre.crop_size], "crop_pct": round(pre.crop_size / pre.resize_size, 4),
                           "crop_mode": "center", "interpolation": pre.interpolation, "mean": list(pre.mean), "std": list(pre.std),
                           "num_classes": net.num_classes, "first_conv": "conv1", "classifier": "fc"},
        LIBRARY_NAME: ours,
    }


def _error_lines(results: dict[str, Any]) -> list[str]:
    rows = []
    for when in ("final", "best"):
        record = results.get(when)
        if isinstance(record, dict):
            for key in ("test_error", "holdout_error", "train_error"):
                if isinstance(record.get(key), (int, float)):
                    name = key.replace("_", " ")
                    rows.append(f"| {when} | {name} | {record[key]:.2f} % | {100 - record[key]:.2f} % |")
    return rows


def model_card(net: Network, config: dict[str, Any], repo: str | None, license: str) -> str:
    """``README.md``: front matter, results, data, preprocessing, use."""
    ours = config[LIBRARY_NAME]
    results, pre = ours["results"], net.preprocess
    dataset = ours.get("dataset") or results.get("data")
    name = repo or "OWNER/NAME"
    front = ["---", f"library_name: {LIBRARY_NAME}", f"license: {license}", "pipeline_tag: image-classification",
             "tags:", "- image-classification", "- resnet", f"- {net.model_name}"]
    if dataset:
        front += ["datasets:", f"- {dataset}"]
    if _error_lines(results):
        front += ["metrics:", "- accuracy"]
    rows = _error_lines(results) or ["| - | (no results recorded: a checkpoint without its run folder) | - | - |"]
    classes = net.classes or []
    shown = ", ".join(classes[:20]) + (f", ... ({len(classes)} in all)" if len(classes) > 20 else "")
    params = sum(p.numel() for p in net.model.parameters())
    lines = [
        *front, "---", "", f"# {name.split('/')[-1]}", "",
        f"A {net.model_name} ({params / 1e6:.2f} M parameters, {net.num_classes} classes) trained with the `resnet` library.", "",
        "## Results", "", "| checkpoint | metric | error | accuracy |", "|---|---|---|---|", *rows, "",
        "## Data", "",
        f"- data set: {dataset or 'not recorded'}" + (f" ({results['train_images']} training images)" if results.get("train_images") else ""),
        f"- training: {results.get('steps', ours.get('step', '?'))} iterations" + (f" of the `{results['recipe']}` recipe" if results.get("recipe") else "")
        + (f", initialised from {results['init']}" if results.get("init") else ""),
        f"- classes: {shown or 'not recorded'}", "",
        "## Preprocessing", "",
        f"Resize the shorter side to {pre.resize_size} pixels ({pre.interpolation}), centre-crop {pre.crop_size}, scale to [0, 1], "
        f"normalise with mean {list(pre.mean)} and std {list(pre.std)}.", "",
        "## Use", "", "```python", "import resnet", "",
        f'model = resnet.create_model("{HUB_PREFIX}{name}", pretrained=True)  # model.preprocess: what it expects',
        "```", "", f"or `resnet predict {HUB_PREFIX}{name} photo.jpg`.", "",
        "## Licence", "", f"{license}" + (" (not stated by the publisher)" if license == DEFAULT_LICENSE else ""), "",
    ]
    return "\n".join(lines)


def publish(source: str | os.PathLike[str], out: str | os.PathLike[str], *, repo: str | None = None,
            license: str = DEFAULT_LICENSE) -> Path:
    """Write the Hub folder of ``source`` (a run folder or checkpoint) into ``out``; ``repo`` (``owner/name``)
    is named in the card. Nothing is fetched; an existing folder's other files are left alone."""
    from ..models.interop import save_weights

    source_path = Path(source)
    if not source_path.exists():
        raise UsageError(f"{source} does not exist; publish takes a run folder or one of our checkpoint files")
    repo = repo_id(repo) if repo else None
    net = load_network(str(source_path))
    if not hasattr(net.model, "spec"):
        raise UsageError(f"{source} holds no network of this library; publish takes our run folders and checkpoints")
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is a file; give publish a folder to write into")
    target.mkdir(parents=True, exist_ok=True)
    config = hub_config(net, _results(source_path))
    save_weights(net.model, target / WEIGHTS_FILE, {k: v for k, v in config[LIBRARY_NAME].items() if k not in ("format", "version")})
    atomic_write_text(target / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    atomic_write_text(target / CARD_FILE, model_card(net, config, repo, license))
    return target


def push(folder: str | os.PathLike[str], repo: str, *, private: bool = False) -> str:
    """Upload ``folder`` (written by :func:`publish`) to the Hub repository ``repo``; returns its address."""
    from huggingface_hub import HfApi, get_token, is_offline_mode

    from huggingface_hub.errors import HfHubHTTPError

    repo = repo_id(repo)
    folder = Path(folder)
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE) if not (folder / f).is_file()]
    if missing:
        raise UsageError(f"{folder} lacks {', '.join(missing)}; write it with publish first")
    if is_offline_mode():
        raise ResNetError("HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it on a machine with network")
    if get_token() is None:
        raise ResNetError("no Hugging Face token: log in with `hf auth login` or set HF_TOKEN, then push again")
    api = HfApi()
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, CARD_FILE],
                          commit_message="resnet weights publish")
    except (HfHubHTTPError, OSError) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ResNetError(f"uploading to {repo} failed: {text}") from None
    return f"https://huggingface.co/{repo}"
