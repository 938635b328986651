"""README examples run as written (issue 14), and the README's command-line reference is the parser's (issue 29).

Every ``resnet ...`` command in the code blocks of the README and of the guides in ``docs/guide/``, and every
example in a ``--help``, must parse with the options the command has. The cheap ones run for real: those that
need nothing but a run folder ``runs/r20`` (trained here on the embedded digits in a few seconds) and a folder
of photos; those that need CIFAR-10, ImageNet or hours are only parsed. The README's "Command line" section has
one subsection per command, and every ``--option`` it names is one that command (or one of its actions) has.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDES = sorted((ROOT / "docs" / "guide").glob("*.md"))
# Commands that run in seconds once runs/r20 and photos/ exist (anything else is parsed only).
CHEAP = re.compile(r"^resnet (list|summary (?!--paper)|eval runs/r20$|predict runs/r20 |export runs/r20 |--help|\S+ --help)")


def readme_commands(pages: tuple[Path, ...] = (README,)) -> list[str]:
    """``resnet ...`` lines of fenced ``bash`` blocks and indented blocks, continuation lines joined, comments cut."""
    commands: list[str] = []
    for page in pages:
        commands.extend(_page_commands(page))
    return commands


def documented_commands() -> list[str]:
    """The commands of the README and of every guide, each once."""
    return list(dict.fromkeys(readme_commands((README, *GUIDES))))


def _page_commands(page: Path) -> list[str]:
    commands: list[str] = []
    fenced, pending = False, ""
    for raw in page.read_text().splitlines():
        if raw.startswith("```"):
            fenced = raw.strip() == "```bash"
            continue
        line = raw.strip() if fenced or raw.startswith("    ") else ""
        if pending:
            line, pending = pending + " " + line, ""
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        line = re.sub(r"\s+#.*$", "", line)
        if line.startswith("resnet ") and "..." not in line:
            commands.append(line)
    return commands


def help_examples() -> list[str]:
    """The example lines of ``resnet --help`` and of every (sub)command's ``--help``."""
    out: list[str] = []

    def walk(parser: argparse.ArgumentParser) -> None:
        epilog = parser.epilog or ""
        out.extend(line.strip() for line in epilog.splitlines()[1:] if line.strip().startswith("resnet ") and "COMMAND" not in line)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    walk(build_parser())
    return out


def test_the_readme_has_examples_to_check() -> None:
    commands = readme_commands()
    assert len(commands) >= 10 and any(CHEAP.match(c) for c in commands)
    assert GUIDES and readme_commands(tuple(GUIDES))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its sub-commands' parsers."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def reference_sections() -> dict[str, str]:
    """The README's ``### `resnet CMD` `` subsections of "Command line": command -> its text."""
    text = README.read_text().split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### `resnet (\S+)`$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def unknown_options(command: argparse.ArgumentParser, text: str) -> set[str]:
    """The ``--options`` ``text`` names that ``command`` does not have (other tools' lines left out)."""
    prose = "\n".join(line for line in text.splitlines() if not line.startswith(("torchrun ", "curl ")))
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", prose)) - _options(command)


def test_the_cli_reference_names_every_command_and_only_real_options() -> None:
    commands, sections = _commands(), reference_sections()
    assert sorted(sections) == sorted(commands), "README: one '### `resnet CMD`' subsection per command"
    for name, text in sections.items():
        unknown = unknown_options(commands[name], text)
        assert not unknown, f"README's reference of resnet {name} names options it does not have: {sorted(unknown)}"


def test_the_reference_check_can_fail() -> None:
    commands = _commands()
    assert unknown_options(commands["eval"], "`--max-batch N`, `--protocol flip`") == {"--max-batch"}
    assert unknown_options(commands["weights"], "`import FILE --as NAME:TAG`, `--push`") == set()
    assert unknown_options(commands["train"], "torchrun --nproc_per_node=8 -m resnet train") == set()


@pytest.mark.parametrize("command", documented_commands() + help_examples())
def test_every_documented_command_parses(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = shlex.split(command)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse exits 2 on an unknown option or value; --help exits 0
        assert stop.code == 0, f"{command}: {capsys.readouterr().err.strip()}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resnet.train import TrainOptions, train

    root = tmp_path_factory.mktemp("readme")
    overrides = {"iterations": "8", "eval_every": "8", "log_every": "4", "batch_size": "32", "holdout": "50"}
    train(TrainOptions(model="resnet20", data="digits", overrides=overrides, out=root / "runs" / "r20", progress=False,
                       tensorboard=False))
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, size=(40, 30), dtype=np.uint8)).save(photos / f"{i}.png")
    return root


@pytest.mark.parametrize("command", [c for c in documented_commands() if CHEAP.match(c)])
def test_cheap_readme_examples_run(command: str, workdir: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("RESNET_CACHE_DIR", str(workdir / "cache"))
    try:
        rc = main(shlex.split(command)[1:])
    except SystemExit as stop:  # --help
        rc = int(stop.code or 0)
    captured = capsys.readouterr()
    assert rc == 0, f"{command}: {captured.err}"
    assert "Traceback" not in captured.err and "Warning" not in captured.err

