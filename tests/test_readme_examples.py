"""README examples run as written (issue 14).

Every ``resnet ...`` command in the README's code blocks, and every example in a ``--help``, must parse
with the options the command has. The cheap ones run for real: those that need nothing but a run folder
``runs/r20`` (trained here on the embedded digits in a few seconds) and a folder of photos; those that
need CIFAR-10, ImageNet or hours are only parsed.
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

README = Path(__file__).resolve().parents[1] / "README.md"
# Commands that run in seconds once runs/r20 and photos/ exist (anything else is parsed only).
CHEAP = re.compile(r"^resnet (list|summary (?!--paper)|eval runs/r20$|predict runs/r20 |export runs/r20 |--help|\S+ --help)")


def readme_commands() -> list[str]:
    """``resnet ...`` lines of fenced ``bash`` blocks and indented blocks, continuation lines joined, comments cut."""
    commands: list[str] = []
    fenced, pending = False, ""
    for raw in README.read_text().splitlines():
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


@pytest.mark.parametrize("command", readme_commands() + help_examples())
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


@pytest.mark.parametrize("command", [c for c in readme_commands() if CHEAP.match(c)])
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

