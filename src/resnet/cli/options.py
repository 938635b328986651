"""How a library message's option names and calls become the command line's flags and commands.

The library names an option the way Python callers spell it, between backticks: ``"`iterations`
must be positive"``, ``"`data_dir` holds no images"``. Only the CLI speaks in flags: for the command
that ran, every backticked name that is the ``dest`` of one of its options is shown as that option's
flag (``--iterations``, ``--data-dir``, ``--set`` for ``overrides``); other backticked text is left
as written. So one message serves both audiences and no library module names a flag.

Likewise the library points to another step by its Python call, between backticks, with string arguments:
``"(`resnet.list_models()` lists them)"``, ``"`resnet.weights.download('resnet18:default')`"``. The CLI
shows each call that one of its commands makes (:data:`COMMANDS`) as that command line:
``resnet list``, ``resnet weights download resnet18:default``.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from typing import Mapping

_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
_CALL = re.compile(r"`(resnet(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\(([^`]*)\)`")
#: The library call behind each command, and the command line that makes it (``{0}``, ``{1}``: the call's
#: arguments; without fields, the arguments follow the command).
COMMANDS: dict[str, str] = {
    "resnet.list_models": "resnet list",
    "resnet.weights.all_entries": "resnet weights list",
    "resnet.weights.entries_for": "resnet weights list",
    "resnet.weights.download": "resnet weights download",
    "resnet.weights.import_file": "resnet weights import {0} --as {1}",
    "resnet.train.train": "resnet train {model}",
    "resnet.deploy.publish.publish": "resnet weights publish",
}


def flag_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """``dest -> flag`` for the parsers on the path the command line took (the deepest parser wins)."""
    names: dict[str, str] = {}
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        chosen = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                key = getattr(args, action.dest, None) if action.dest != argparse.SUPPRESS else None
                chosen = action.choices.get(key) if isinstance(key, str) else None
            elif action.option_strings and action.dest != argparse.SUPPRESS:
                if action.help == argparse.SUPPRESS and action.dest in names:
                    continue  # a hidden old spelling never names its option in a message (--mode, --source)
                long = [s for s in action.option_strings if s.startswith("--")]
                names[action.dest] = (long or action.option_strings)[0]
        current = chosen
    return names


def as_flags(text: str, names: Mapping[str, str]) -> str:
    """``text`` with each backticked option name replaced by its flag (unknown names keep their backticks), and
    each backticked library call that a command makes shown as that command (:func:`as_command`)."""
    return _NAME.sub(lambda m: names.get(m.group(1), m.group(0)), _CALL.sub(as_command, text))


def as_command(match: re.Match[str]) -> str:
    """A backticked call (:data:`_CALL`) as the command line that makes it; as written when it is not one."""
    template = COMMANDS.get(match.group(1))
    try:
        call = ast.parse(f"f({match.group(2)})", mode="eval").body
    except SyntaxError:
        return match.group(0)
    values = [*call.args, *(k.value for k in call.keywords)] if isinstance(call, ast.Call) else [None]
    if template is None or not all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values):
        return match.group(0)
    shown = lambda v: v.value if v.value.isupper() else shlex.quote(v.value)  # noqa: E731 - FILE, NAME as they are
    args, kwargs = [shown(a) for a in call.args], {k.arg: shown(k.value) for k in call.keywords}
    line = template.format(*args, **kwargs) if "{" in template else " ".join([template, *args])
    return f"`{line}`"
