"""Names and limits of evaluation options, free of PyTorch so the command line can list them at once."""

from ..utils.limits import MAX_SIDE  # noqa: F401  (re-exported for the command line)
from ..utils.modes import OPTIMIZE_MODES, PROTOCOLS  # noqa: F401  (re-exported; resnet.utils.modes owns the lists)

from ..utils.modes import ORIGINS as IMPORT_SOURCES  # noqa: F401  (who made a checkpoint; re-exported for the command line)
