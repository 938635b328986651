"""Training many networks for one experiment: plan, resume, run (one by one or N at once), read back.

Every network trains into ``OUT/runs/<name>/`` through the trainer (:mod:`resnet.train`, see
``docs/dev/trainer-contract.md``). A small ``experiment.json`` in that folder records what the
experiment asked for (budget, iterations, seed, data) and whether the training finished, so that
rerunning the experiment

- never redoes a finished run,
- resumes an unfinished one (the trainer's ``resume``),
- refuses to mix a folder trained under other settings into the figure.

One job per module: :mod:`.plans` (which networks, with which shared settings), :mod:`.folders` (what a
run folder says about itself), :mod:`.budgets` (named run lengths), :mod:`.scheduler` (training them, in
this process or as ``parallel`` subprocesses of :mod:`.worker`) and :mod:`.curves` (their error curves read back).
"""

from typing import TYPE_CHECKING

from ...utils.lazy import exports, lazy_attributes

if TYPE_CHECKING:
    from .budgets import BUDGETS, Budget, budget_iterations, budget_settings, describe_settings, paper_recipe
    from .curves import read_curves
    from .folders import MARKER, STATE_FILE, has_checkpoint, read_marker, run_status, settings_from_markers, write_marker
    from .plans import RunPlan, TrainSettings, plan_runs
    from .scheduler import ExperimentInterrupted, RunOutcome, execute, job_of, read_job, train_command, train_in_process

_EXPORTS = exports({
    "budgets": ["BUDGETS", "Budget", "budget_iterations", "budget_settings", "describe_settings", "paper_recipe",
                "REDUCED_ITERATIONS", "TINY_ITERATIONS", "IMAGENET_DATA"],
    "curves": ["read_curves"],
    "folders": ["MARKER", "STATE_FILE", "has_checkpoint", "read_marker", "run_status", "settings_from_markers",
                "write_marker"],
    "plans": ["RunPlan", "TrainSettings", "plan_runs", "Status"],
    "scheduler": ["ExperimentInterrupted", "RunOutcome", "execute", "job_of", "read_job", "train_command", "train_in_process"],
})
__all__ = list(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)  # the budgets are read by `resnet --help`: no PyTorch here
