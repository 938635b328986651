"""Library messages name options as Python spells them; the CLI shows them as its flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnet.cli import build_parser, main
from resnet.cli.options import as_flags, flag_names
from resnet.errors import UsageError
from resnet.utils.device import resolve_device


def test_names_follow_the_command_that_ran() -> None:
    parser = build_parser()
    args = parser.parse_args(["experiment", "degradation", "--data", "digits"])
    names = flag_names(parser, args)
    assert names["data_dir"] == "--data-dir"
    assert names["overrides"] == "--set"
    assert as_flags("`data_dir` holds no images; see `overrides` and `nonsense`", names) == (
        "--data-dir holds no images; see --set and `nonsense`")


def test_library_calls_are_shown_as_the_commands_that_make_them(capsys: pytest.CaptureFixture[str]) -> None:
    """The library points to another step by its Python call; the CLI shows that call as its command line."""
    import resnet
    from resnet.cli.options import COMMANDS

    assert as_flags("see `resnet.list_models()`; `resnet.weights.download('resnet18:default')`, then "
                    "`resnet.weights.import_file('FILE', 'resnet18:tv_in1k_v1')`; `resnet.train.train(model='resnet20')`; "
                    "`resnet.weights.entries_for('a b')`; `resnet.nothing()`; `resnet.list_models(x)`", {}) == (
        "see `resnet list`; `resnet weights download resnet18:default`, then "
        "`resnet weights import FILE --as resnet18:tv_in1k_v1`; `resnet train resnet20`; "
        "`resnet weights list 'a b'`; `resnet.nothing()`; `resnet.list_models(x)`")
    import argparse
    import importlib

    for call, command in COMMANDS.items():  # each call exists, and so does its command
        module, _, name = call.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), call
        parser: argparse.ArgumentParser = build_parser()
        for word in command.split()[1:]:
            if word.startswith(("{", "-")):
                break
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[word]
    with pytest.raises(resnet.UnknownModelError, match=r"`resnet\.list_models\(\)` lists all"):
        resnet.get_spec("nonet")
    assert main(["predict", "nonet:default", "x.png"]) != 0
    assert "(`resnet list` lists the model names)" in capsys.readouterr().err


def test_library_message_has_no_flag_and_cli_line_has_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from resnet import create_model
    from resnet.models.interop import save_weights

    with pytest.raises(UsageError) as err:
        resolve_device("quantum")
    assert "--" not in str(err.value) and "`device`" in str(err.value)
    ckpt = tmp_path / "n.safetensors"
    save_weights(create_model("resnet8", num_classes=2), ckpt, {"classes": ["a", "b"]})
    Image.new("RGB", (32, 32)).save(tmp_path / "p.png")
    assert main(["predict", str(ckpt), str(tmp_path / "p.png"), "--device", "quantum"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--device" in line and "`" not in line
