"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import ResNetError, UsageError, WrongFileKind
from ..utils.modes import DEFAULT_ENGINE, ENGINES, OURS, checks_on_images, is_eager, needs_images


def build_model(name: str, **overrides: Any):  # noqa: ANN201 - returns resnet.ResNet
    """``create_model`` with bad names or settings turned into a usage error (exit 2)."""
    from ..models import create_model

    try:
        return create_model(name, **overrides)
    except ValueError as err:
        raise UsageError(str(err)) from None


def examples(*lines: str) -> str:
    """The epilog of a command's ``--help``: one or two commands as they are typed."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def hidden_alias(p: argparse.ArgumentParser, flag: str, dest: str, **kwargs: Any) -> None:
    """An earlier spelling of an option, still accepted (scripts keep working) but not shown by --help."""
    p.add_argument(flag, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


class _RenamedFlag(argparse.Action):
    """An old spelling that still works and, on a terminal, says what the flag is called now (scripts and
    their logs stay as they were)."""

    def __init__(self, option_strings: list[str], dest: str, new_flag: str = "", **kwargs: Any) -> None:
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if sys.stderr.isatty():
            print(f"{parser.prog}: note: {option_string} is now spelled {self.new_flag} (as in every command); "
                  f"{option_string} still works", file=sys.stderr)
        setattr(namespace, self.dest, values)


def renamed_flag(p: argparse.ArgumentParser, flag: str, dest: str, new_flag: str, **kwargs: Any) -> None:
    """A hidden old spelling of ``new_flag`` that notes the new one when used (``serve --mode`` → ``--optimize``)."""
    p.add_argument(flag, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, action=_RenamedFlag,
                   new_flag=new_flag, **kwargs)


def add_device(p: argparse.ArgumentParser, default: str | None = "auto", note: str = "") -> None:
    from ..utils.device import DEVICE_CHOICES

    p.add_argument("--device", default=default,
                   help=f"where the network runs: {DEVICE_CHOICES} (default auto: a GPU when PyTorch sees one{note})")


def add_engine(p: argparse.ArgumentParser, mode_flag: str) -> None:
    """``--engine``: what runs the ``mode_flag`` mode (resnet.inference.optimize's ``engine``)."""
    p.add_argument("--engine", default=DEFAULT_ENGINE, choices=ENGINES,
                   help=f"what runs {mode_flag} (default {DEFAULT_ENGINE}); auto measures ours (fused oneDNN), ONNX Runtime, "
                        "OpenVINO and PyTorch export at this command's batch size, keeps the fastest that agrees with "
                        "the float model on the calibration images, and caches the choice per machine")


def check_optimize_flags(optimize: str, engine: str, calibration: str | None, mode_flag: str = "--optimize") -> None:
    """:class:`UsageError` for ``--engine`` / ``--calibration`` that the ``mode_flag`` mode would ignore."""
    if engine != DEFAULT_ENGINE and is_eager(optimize):
        raise UsageError(f"--engine {engine} runs an optimised mode; add {mode_flag} fp32 or int8")
    if calibration is not None and not (needs_images(optimize, engine) or checks_on_images(optimize, engine)):
        raise UsageError(f"--calibration applies to {mode_flag} int8, or to --engine other than {OURS}")


def load_options(args: argparse.Namespace) -> Any:
    """The :class:`~resnet.evaluate.requests.LoadOptions` of eval's and predict's loading options."""
    from ..evaluate.requests import LoadOptions

    return LoadOptions(model=args.model, checkpoint_source=args.checkpoint_source, allow_untrained=args.allow_untrained,
                       device=args.device, optimize=args.optimize, engine=args.engine, calibration=args.calibration,
                       resize=args.resize, crop=args.crop)


def add_origin(p: argparse.ArgumentParser) -> None:
    """``--origin``: who made a checkpoint (``--source`` in earlier versions, which clashed with SOURCE)."""
    from ..evaluate.names import IMPORT_SOURCES

    p.add_argument("--origin", dest="checkpoint_source", default="auto", choices=IMPORT_SOURCES,
                   help="who made the checkpoint, if detection fails (default auto: read off its keys)")
    hidden_alias(p, "--source", "checkpoint_source", choices=IMPORT_SOURCES)


def add_allow_untrained(p: argparse.ArgumentParser) -> None:
    """``--allow-untrained``: let weights that were never trained through (their answers mean nothing)."""
    p.add_argument("--allow-untrained", action="store_true",
                   help="accept weights that look untrained (batch-norm statistics or scales still at their initial values), "
                        "which are refused otherwise: their answers mean nothing")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def console():  # noqa: ANN201 - rich.console.Console
    from rich.console import Console

    # Piped output (CI logs, files) gets a wide fixed width so tables are never truncated.
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def wrong_kind_hint(err: ResNetError, command: str) -> str:
    """What to do when a file of another kind stood where weights belong (:class:`WrongFileKind`), for ``command``."""
    from ..utils.filekind import IMAGE, ONNX, TORCHSCRIPT

    if not isinstance(err, WrongFileKind):
        return ""
    reads = f"`resnet {command}` reads checkpoints, run folders and weight names (NAME:TAG)"
    if err.kind == IMAGE and command == "predict":
        return "; did you swap the arguments? `resnet predict RUN PHOTO...` (the run folder or checkpoint first, then the photos)"
    if err.kind == IMAGE and command == "eval":
        return f"; {reads}: the images go in --data-dir (`resnet eval RUN --data-dir PHOTOS`)"
    if err.kind == ONNX:
        return (f"; {reads}; run ONNX files with ONNX Runtime (onnxruntime.InferenceSession('{err.path}')), or pass the "
                "checkpoint or run folder it was exported from")
    if err.kind == TORCHSCRIPT:
        return (f"; {reads}; run TorchScript exports with PyTorch's torch.jit.load (they carry code: only files you "
                "trust), or pass the checkpoint or run folder it was exported from")
    return f"; {reads}"
