"""Exceptions that carry a message meant for the user (the CLI prints them as one line).

A message names an option the way Python callers spell it, between backticks ("`iterations` must be
positive", "`data_dir` holds no images"); the CLI shows each such name as its flag (``--iterations``,
``--data-dir``: :mod:`resnet.cli.options`). No library module names a command-line flag.
"""


class ResNetError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` says what and how."""

    exit_code = 1


class UsageError(ResNetError):
    """Nonsense option values or arguments (exit status 2)."""

    exit_code = 2


class CheckpointError(ResNetError):
    """A checkpoint that cannot be read safely or does not fit the model."""


class DataError(ResNetError):
    """Missing, empty or unreadable data."""


class WrongFileKind(CheckpointError):
    """A file of another kind where weights were expected (an image, an ONNX or TorchScript export): the message
    names the file and what it is; ``kind`` (:mod:`resnet.utils.filekind`) lets the CLI add the fix for its command."""

    def __init__(self, message: str, path: str, kind: str) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind
