"""The ``resnet`` command. Each subcommand lives in its own ``cmd_<name>.py`` module with
``add_parser(subparsers)`` and ``run(args) -> int``; this file only dispatches and turns
:class:`~resnet.errors.ResNetError` into a one-line message and an exit status
(2 for usage errors, 1 for runtime errors).

:func:`main` is the one reader of ``sys.argv``: the command line it was given reaches the commands as
``args.argv`` (``resnet train`` records it in the run's results), so ``main(["train", ...])`` from Python is
recorded as it was typed."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import sys
import warnings
from typing import Iterator, Mapping, Sequence, TextIO

from ..errors import ResNetError
from .options import as_flags, flag_names

COMMANDS = ("list", "summary", "train", "eval", "predict", "experiment", "export", "bench", "weights", "serve")


class _Formatter(argparse.HelpFormatter):
    """Wraps descriptions as usual but keeps the lines of an ``examples:`` epilog as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs["allow_abbrev"] = False  # `eval --mode fp32` must not become --model fp32: one spelling per flag
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"resnet: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="resnet", description="Deep residual networks: models, training, evaluation, experiments, deployment.",
        epilog="examples:\n  resnet list\n  resnet train resnet20 --data cifar10 --data-dir ../shared/data/cifar10 --out runs/r20\n"
               "  resnet eval runs/r20\n  resnet predict runs/r20 photo.jpg\n  resnet COMMAND --help",
    )
    parser.add_argument("--version", action="version", version=f"resnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module_name = f"{__name__}.cmd_{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` is the command line after ``resnet`` (default: this process's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = tuple(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    flags = flag_names(parser, args)
    try:
        with one_line_warnings(args.command, flags):
            return int(args.func(args) or 0)
    except ResNetError as err:
        from .common import wrong_kind_hint

        print(f"resnet {args.command}: error: {as_flags(str(err), flags)}{wrong_kind_hint(err, args.command)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"resnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        print(f"resnet {args.command}: error: out of memory ({_first_line(err)}); use a smaller --batch-size, "
              "input size or network", file=sys.stderr)
        return 1


@contextlib.contextmanager
def one_line_warnings(command: str, flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Python warnings reach the terminal as one ``resnet COMMAND: warning: ...`` line each, never as
    ``file:line: Category: text`` plus a source line; repeats of one message are shown once. Option
    names in backticks are shown as the command's flags (:mod:`.options`)."""
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        lines = str(message).strip().splitlines()
        text = as_flags(lines[0], flags or {}) if lines else category.__name__
        if text not in seen:
            seen.add(text)
            print(f"resnet {command}: warning: {text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or any(
        s in text for s in ("can't allocate memory", "out of memory", "Storage size calculation overflowed")
    )


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:200]


if __name__ == "__main__":
    sys.exit(main())
