"""Every warning and error about a file names the file, PyTorch's warnings while reading a checkpoint included."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import resnet
from resnet.cli import main
from resnet.errors import CheckpointError
from resnet.models.interop import read_state_dict
from resnet.utils.file_warnings import naming_file


def test_a_warning_raised_while_reading_a_file_is_said_again_naming_it() -> None:
    with pytest.warns(Warning) as record:
        with naming_file("/data/x.pth"):
            warnings.warn("odd header", UserWarning)
            warnings.warn("odd header", UserWarning)  # said once
            warnings.warn("/data/x.pth has a comment", RuntimeWarning)  # already named: not named twice
    assert [str(w.message) for w in record] == ["/data/x.pth: odd header", "/data/x.pth has a comment"]
    assert [w.category for w in record] == [UserWarning, RuntimeWarning]


def test_warnings_are_named_even_when_the_read_fails_and_filters_still_apply() -> None:
    with pytest.warns(UserWarning, match=r"^f\.th: before the failure$"):
        with pytest.raises(ValueError):
            with naming_file("f.th"):
                warnings.warn("before the failure", UserWarning)
                raise ValueError("bad")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("ignore", DeprecationWarning)
        with naming_file("f.th"):
            warnings.warn("silenced", DeprecationWarning)
    assert not seen


def test_the_cli_warning_and_error_about_a_checkpoint_name_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = tmp_path / "resnet20-protocol4.pth"  # PyTorch warns about the pickle protocol, naming no file
    torch.save(resnet.create_model("resnet20").state_dict(), checkpoint, pickle_protocol=4)
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "photo.png")
    assert main(["predict", str(checkpoint), str(tmp_path / "photo.png")]) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and all(str(checkpoint) in line for line in lines), lines
    assert any(": warning: " in line and "pickle protocol 4" in line for line in lines), lines
    assert "saved with pickle protocol 4" in lines[-1] and "Re-save it" in lines[-1]
    with pytest.warns(UserWarning, match=f"^{checkpoint}: Detected pickle protocol 4"):
        with pytest.raises(CheckpointError, match="nothing in it was run"):
            read_state_dict(checkpoint)
