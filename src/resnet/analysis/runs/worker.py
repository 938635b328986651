"""One planned run in a process of its own: what :func:`resnet.analysis.runs.scheduler.execute` starts for each of
``parallel`` runs. It calls the trainer through the library (:func:`~resnet.analysis.runs.scheduler.train_in_process`),
never through the command line, so an experiment depends on the trainer's options, not on the CLI's spelling of them.

The job travels as one JSON argument (:func:`~resnet.analysis.runs.scheduler.job_of` writes it); a problem is one
line on stderr and the error's exit status (130 after Ctrl-C / SIGTERM, the run checkpointed).
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

from ...errors import ResNetError
from .scheduler import read_job, train_in_process


def main(argv: Sequence[str]) -> int:
    """Run the job ``argv`` holds (this module's command line, given by ``__main__`` below)."""
    args = list(argv)
    try:
        if len(args) != 1:
            raise ResNetError(f"expected one JSON job, got {len(args)} arguments")
        plan, settings = read_job(json.loads(args[0]))
        train_in_process(plan, settings)
    except ResNetError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
