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
