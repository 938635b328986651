"""How a library message's option names become the command line's flags.

The library names an option the way Python callers spell it, between backticks: ``"`iterations`
must be positive"``, ``"`data_dir` holds no images"``. Only the CLI speaks in flags: for the command
that ran, every backticked name that is the ``dest`` of one of its options is shown as that option's
flag (``--iterations``, ``--data-dir``, ``--set`` for ``overrides``); other backticked text is left
as written. So one message serves both audiences and no library module names a flag.
"""

from __future__ import annotations

import argparse
import re
from typing import Mapping

_NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")


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
    """``text`` with each backticked option name replaced by its flag (unknown names keep their backticks)."""
    return _NAME.sub(lambda m: names.get(m.group(1), m.group(0)), text)
