"""``python -m resnet`` (and ``torchrun -m resnet train ...``)."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
