"""Issue 14: one name per idea, --device where a network runs, complete --help, a fast and honest ``list``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch

from resnet.cli import build_parser, main
from resnet.models.interop import save_weights


def subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    out = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += subparsers(sub, (*path, name))
    return out


@pytest.mark.parametrize("path,parser", subparsers(build_parser()), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_help_has_a_purpose_option_help_and_examples(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    assert parser.description and parser.description.strip(), path
    assert (parser.epilog or "").startswith("examples:\n  resnet "), path
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        assert action.help and action.help.strip(), (path, action.option_strings or action.dest)


def test_one_flag_name_per_idea_with_the_old_spellings_still_accepted() -> None:
    parser = build_parser()
    shown = {" ".join(p): {s for a in sub._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
             for p, sub in subparsers(parser) if p}
    for command, flags in shown.items():
        assert "--batch" not in flags and "--source" not in flags and "--model-name" not in flags, command
        assert command == "" or "--version" not in flags, command
    for command in ("eval", "predict", "export"):
        assert "--origin" in shown[command]
    for command in ("train", "eval", "predict", "bench"):
        assert "--device" in shown[command]
    # old spellings: hidden, same destination
    args = parser.parse_args(["eval", "x", "--source", "akamaster"])
    assert args.checkpoint_source == "akamaster"
    assert parser.parse_args(["bench", "resnet8", "--batch", "1,4"]).batch == "1,4"
    assert parser.parse_args(["bench", "resnet8", "--model-name", "resnet8"]).model_name == "resnet8"
    assert parser.parse_args(["export", "x", "--out", "y.onnx", "--batch", "3"]).batch == 3
    assert parser.parse_args(["summary", "resnet50", "--version", "v1"]).version == "v1"


def test_device_is_honoured_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from resnet import create_model

    torch.manual_seed(0)
    ckpt = tmp_path / "n.safetensors"
    save_weights(create_model("resnet8", num_classes=2), ckpt, {"classes": ["a", "b"]})
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "p.png")
    assert main(["predict", str(ckpt), str(tmp_path / "p.png"), "--device", "cpu"]) == 0
    assert main(["predict", str(ckpt), str(tmp_path / "p.png"), "--device", "quantum"]) == 2
    assert "unknown device 'quantum'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["predict", str(ckpt), str(tmp_path / "p.png"), "--device", "cuda"]) == 2
        assert "no GPU is visible" in capsys.readouterr().err


def test_list_answers_from_the_shipped_counts_without_pytorch(tmp_path: Path) -> None:
    import subprocess

    src = str(Path(__file__).resolve().parents[1] / "src")
    code = ("import sys; from resnet.cli import main; rc = main(['list', '--json']); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": src, "RESNET_CACHE_DIR": str(tmp_path / "empty-cache"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "NO-TORCH"
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["resnet56"]["params"] == 853_018 and rows["resnet50"]["macs"] > 4e9


def test_shipped_counts_cover_every_network_and_match_a_fresh_count(tmp_path: Path) -> None:
    from resnet.analysis.count_cache import SHIPPED, _count, input_size_of, spec_key
    from resnet.models import get_spec, list_models

    shipped = json.loads(SHIPPED.read_text())
    for name in list_models(None):  # a spec changed without `python -m resnet.analysis.count_cache` fails here
        assert spec_key(get_spec(name), input_size_of(get_spec(name))) in shipped, name
    for name in ("resnet20", "plain32"):
        entry = shipped[spec_key(get_spec(name), 32)]
        fresh = _count(name, 32)
        assert (entry["params"], entry["macs"]) == (fresh.params, fresh.macs)


def test_a_new_spec_is_counted_once_then_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resnet.analysis.count_cache as cc
    from resnet.models import get_spec

    monkeypatch.setattr(cc, "SHIPPED", tmp_path / "none.json")  # as if the spec had changed since shipping
    calls: list[str] = []
    real = cc._count
    monkeypatch.setattr(cc, "_count", lambda name, size: calls.append(name) or real(name, size))
    first = cc.model_counts(["resnet8"], tmp_path / "cache")
    second = cc.model_counts(["resnet8"], tmp_path / "cache")
    assert calls == ["resnet8"] and first == second
    assert get_spec("resnet8").stem == "cifar" and first["resnet8"].input_size == 32


def test_list_with_no_match_says_so_and_names_close_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "zzz"]) == 2
    assert capsys.readouterr().err.strip() == "resnet list: error: no network matches 'zzz' (`resnet list` lists all)"
    assert main(["list", "resnt5"]) == 2
    err = capsys.readouterr().err
    assert "no network matches 'resnt5'" in err and "close names: resnet5" in err
