"""`resnet list` and `resnet summary`."""

from __future__ import annotations

import json

import pytest

from resnet.cli import main


def test_summary_paper_shows_both_families_beside_paper(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--paper", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in data["imagenet"]}
    assert by_name["resnet50"]["gmacs_v1.5"] == 4.089 and by_name["resnet50"]["params"] == 25_557_032
    assert [r["name"] for r in data["cifar"]] == ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202"]
    assert main(["summary", "--paper"]) == 0
    text = capsys.readouterr().out
    assert "11.514G" in text and "252.89M" in text and "8.75%" in text


def test_summary_per_stage_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet56", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert [st["stage"] for st in s["stages"]] == ["stem", "layer1", "layer2", "layer3", "head"]
    assert [st["output_size"] for st in s["stages"][1:4]] == ["32x32", "16x16", "8x8"]
    assert [st["blocks"] for st in s["stages"][1:4]] == [9, 9, 9]
    assert sum(st["params"] for st in s["stages"]) == s["params"] == 853_018
    assert main(["summary", "resnet50", "--version", "v1"]) == 0
    assert "3,857.97M" in capsys.readouterr().out


def test_list_with_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "resnet1*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"resnet18", "resnet101", "resnet110", "resnet152", "resnet1202"}
    assert main(["list", "--names-only"]) == 0
    assert "wrn28_10" in capsys.readouterr().out.split()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["summary", "resnt50"], "did you mean resnet50"),
        (["summary", "resnet22"], "6n+2"),
        (["summary"], "give a model name"),
        (["summary", "resnet20", "--input-size", "2"], "--input-size"),
    ],
)
def test_bad_input_is_one_line_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
