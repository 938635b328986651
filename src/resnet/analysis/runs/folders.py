"""What a run folder says about itself: the experiment's marker (``experiment.json``: settings and
status) beside the trainer's own files, and whether the run is new, resumable or done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ...errors import ResNetError, UsageError
from ...train.checkpoint import STATE_FILE
from ...utils.atomic import atomic_write_text
from .plans import RunPlan, Status, TrainSettings

MARKER = "experiment.json"


def read_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ResNetError(f"{path} is unreadable ({err}); delete it to retrain {folder.name} from its checkpoint") from None
    return data if isinstance(data, dict) else None


def write_marker(plan: RunPlan, settings: TrainSettings, status: Status, **extra: Any) -> None:
    record = {"status": status, **settings.identity(plan), "device": settings.device, "data_dir": settings.data_dir,
              "budget": settings.budget, **extra}
    atomic_write_text(plan.folder / MARKER, json.dumps(record, indent=2) + "\n")


def run_status(plan: RunPlan, settings: TrainSettings) -> Status:
    """``done`` (finished under these settings), ``partial`` (has a checkpoint to resume) or ``new``.

    A folder trained under other settings (another budget, seed, recipe) is an error, not something
    to silently resume or mix into the figure, unless it holds nothing to lose (a run that failed
    before its first checkpoint): that one simply starts again under the new settings.
    """
    marker = read_marker(plan.folder)
    if marker is not None:
        wanted = settings.identity(plan)
        differs = {k: (marker.get(k), v) for k, v in wanted.items() if not _same(k, marker.get(k), v)}
        if differs and marker.get("status") != "done" and not has_checkpoint(plan.folder):
            return "new"
        if differs:
            what = "; ".join(f"{k}: folder {a!r} vs now {b!r}" for k, (a, b) in differs.items())
            raise UsageError(
                f"{plan.folder} was trained under other settings ({what}); use another `out`, or delete that folder to retrain it"
            )
        if marker.get("status") == "done":
            return "done"
    return "partial" if has_checkpoint(plan.folder) else "new"


def _same(key: str, recorded: Any, wanted: Any) -> bool:
    """Recorded and wanted identity values agree; recipe overrides are a set of distinct fields (each named once),
    so the order a budget and the user listed them in does not change what was trained."""
    if key == "overrides" and isinstance(recorded, list) and isinstance(wanted, list):
        return sorted(map(str, recorded)) == sorted(map(str, wanted))
    return bool(recorded == wanted)


def has_checkpoint(folder: Path) -> bool:
    """Whether the trainer left a state to resume from (its :data:`~resnet.train.checkpoint.STATE_FILE`)."""
    return (folder / STATE_FILE).is_file()


def settings_from_markers(plans: Sequence[RunPlan]) -> TrainSettings | None:
    """The settings the existing run folders were trained with (``plot_only``), None without any.

    Folders trained under different settings are refused: one figure shows one training setup.
    """
    found: list[tuple[RunPlan, dict[str, Any]]] = [(p, m) for p in plans if (m := read_marker(p.folder)) is not None]
    if not found:
        return None
    settings = [(plan, _settings_of(plan, m)) for plan, m in found]
    first_plan, first = settings[0]
    key = lambda s: (s.data, s.recipe, s.iterations, s.overrides)  # noqa: E731 - what makes runs comparable
    for plan, s in settings[1:]:
        if key(s) != key(first):
            raise UsageError(
                f"{first_plan.folder} and {plan.folder} were trained under different settings "
                f"({first.iterations} vs {s.iterations} iterations, overrides {list(first.overrides)} vs {list(s.overrides)}); "
                "plot them from separate `out` folders"
            )
    return first


def _settings_of(plan: RunPlan, m: dict[str, Any]) -> TrainSettings:
    try:
        return TrainSettings(
            data=str(m["data"]), data_dir=m.get("data_dir"), recipe=str(m["recipe"]), iterations=int(m["iterations"]),
            overrides=tuple(str(o) for o in m.get("overrides", [])), device=str(m.get("device", "cpu")),
            budget=str(m.get("budget", "")),
        )
    except (KeyError, TypeError, ValueError):
        raise ResNetError(f"{plan.folder / MARKER} lacks data/recipe/iterations; delete it and rerun that network") from None
