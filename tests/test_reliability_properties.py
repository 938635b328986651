"""Property-based attacks (issue 7): whatever the input, the answer is a result or one of our errors.

- command lines of ``list`` / ``summary`` / ``eval`` / ``predict`` built from real and nonsense options:
  the CLI returns an exit status (or argparse exits with 2), never a traceback;
- recipe overrides (``--set KEY=VALUE``): a recipe or a :class:`UsageError`;
- image bytes (random, or a real PNG / JPEG / GIF / BMP / TIFF / WebP mutated): decoded, or
  :class:`DecodeFailure` / :class:`DataError`;
- state dicts with random keys, shapes and values, in every container the importers read: loaded, or
  :class:`CheckpointError`.

Example counts are modest and the examples fixed (derandomized) so the file runs in well under 30 s on
two cores and the same way every time; ``HYPOTHESIS_PROFILE=many`` draws fresh random examples, 2000 per
test or ``HYPOTHESIS_EXAMPLES``, for longer hunts.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from reliability_helpers import odd_images
from safetensors.torch import save

import resnet
from resnet.cli import main
from resnet.data.decode import DecodeFailure, decode_file, decode_image_tensor
from resnet.errors import CheckpointError, DataError, ResNetError, UsageError
from resnet.data.decode import read_image
from resnet.models.interop import ORIGINS, load_pretrained, model_from_checkpoint, save_weights

settings.register_profile("default", deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("many", deadline=None, max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "2000")), database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)


def examples(n: int) -> settings:
    return settings(max_examples=n if PROFILE == "default" else settings.default.max_examples)


# -- fixtures shared by the command-line properties --------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("world")
    ckpt = root / "digits8.safetensors"
    save_weights(resnet.create_model("resnet8", num_classes=10, in_chans=1), ckpt, {"classes": [str(i) for i in range(10)]})
    cut = root / "cut.safetensors"
    cut.write_bytes(ckpt.read_bytes()[:3000])
    odd_images(root / "imgs" / "test" / "a", size=16)
    odd_images(root / "imgs" / "test" / "b", size=16)
    return {"ckpt": str(ckpt), "cut": str(cut), "imgs": str(root / "imgs"), "img": str(root / "imgs" / "test" / "a" / "rgb.png"),
            "bad": str(root / "imgs" / "test" / "a" / "truncated.png"), "missing": str(root / "missing"), "root": str(root)}


JUNK = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
SMALL_INTS = st.integers(-3, 40).map(str)
ODD_NUMBERS = st.sampled_from(["0", "-1", "1e3", "abc", "", " 7", "4097", "99999999999999999999", "nan", "0x10", "1_0"])
# Never a large valid size: those are slow, not wrong. Mostly plausible numbers, sometimes nonsense.
NUMBER = st.integers(0, 3).flatmap(lambda i: SMALL_INTS if i else st.one_of(ODD_NUMBERS, JUNK))


def _options(spec: dict[str, st.SearchStrategy[str] | None]) -> st.SearchStrategy[list[str]]:
    """Lists of option tokens: names from ``spec`` (with their values) plus unknown options and junk."""
    names = sorted(spec)
    option = st.sampled_from(names).flatmap(lambda n: st.just([n]) if spec[n] is None else spec[n].map(lambda v: [n, v]))  # type: ignore[union-attr]
    nonsense = st.one_of(
        st.sampled_from(names).map(lambda n: [n]),  # an option missing its value
        st.sampled_from(["--nope", "-x", "--", "-", "--json=1", "--help-me"]).map(lambda t: [t]),
        JUNK.map(lambda t: [t]),
    )
    # Mostly real options (so the commands get past argparse and do work), sometimes nonsense.
    token = st.integers(0, 5).flatmap(lambda i: nonsense if i == 0 else option)
    return st.lists(token, max_size=5).map(lambda parts: [t for p in parts for t in p])


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> int:
    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse: usage errors exit with 2, --help with 0
        assert exit_.code in (0, 2), (argv, exit_.code)
        rc = int(exit_.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, argv
    assert rc in (0, 1, 2), (argv, rc, err)
    if rc and err.strip():
        assert any(line.startswith(("resnet", "usage:")) for line in err.splitlines()), (argv, err)
    event(f"exit status {rc}")
    return rc


MODELS = st.sampled_from(["resnet8", "plain8", "resnet14", "resnet9", "resnet21", "plain", "resnet", "preact_resnet8", "", "..", "/"])


@examples(40)
@given(pattern=st.one_of(JUNK, st.sampled_from(["resnet*", "*", "[", "[!", "plain", "**", "?", "\\"])),
       extra=_options({"--json": None, "--markdown": None}))
def test_list_never_raises(pattern: str, extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(["list", pattern, *extra, "--names-only"], capsys)  # --names-only: building every model is slow, not wrong


@examples(40)
@given(name=st.integers(0, 3).flatmap(lambda i: MODELS if i else JUNK), extra=_options({
    "--input-size": NUMBER, "--version": st.sampled_from(["v1", "v1.5", "v2", ""]), "--shortcut": st.sampled_from(["A", "B", "C", "none", "a", "Z"]),
    "--num-classes": NUMBER, "--json": None, "--paper": None}))
def test_summary_never_raises(name: str, extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    if "--paper" in extra:
        extra = [t for t in extra if t != "--paper"]  # the paper table builds every ImageNet net: slow, tested elsewhere
    run_cli(["summary", name, *extra], capsys)


def _sources(world: dict[str, str]) -> st.SearchStrategy[str]:
    named = st.sampled_from(["resnet8", "plain8", "resnet21", world["ckpt"], world["cut"], world["missing"], world["img"],
                             world["imgs"], world["root"]])
    return st.integers(0, 4).flatmap(lambda i: named if i else JUNK)


SIZES = st.integers(0, 3).flatmap(lambda i: st.integers(-2, 48).map(str) if i else st.one_of(ODD_NUMBERS, st.just("8,16")))


@examples(25)
@given(data=st.data())
def test_eval_never_raises(data: st.DataObject, world: dict[str, str], capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path / "cache"))
    sources = data.draw(st.lists(_sources(world), min_size=1, max_size=2))
    extra = data.draw(_options({
        "--data": st.sampled_from(["digits", "folder", "imagenet", "cifar10", "nope", ""]),
        "--data-dir": st.sampled_from([world["imgs"], world["missing"], world["img"], world["root"], ""]),
        "--split": st.sampled_from(["test", "train", "val", "nope"]),
        "--protocol": st.sampled_from(["center", "flip", "10crop", "multiscale", "nope"]),
        "--scales": SIZES, "--resize": SIZES, "--crop": SIZES, "--batch-size": NUMBER, "--limit": NUMBER,
        "--model": st.one_of(MODELS, JUNK), "--source": st.sampled_from(["auto", "resnet", "torchvision", "timm", "akamaster", "x"]),
        "--json": None,
    }))
    data_args = data.draw(st.sampled_from([["--data", "digits"], ["--data", "digits"], ["--data-dir", world["imgs"]], []]))
    run_cli(["eval", *sources, *data_args, "--limit", "12", *extra], capsys)  # a later --limit wins; at most the 360 digits


@examples(20)
@given(data=st.data())
def test_predict_never_raises(data: st.DataObject, world: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    source = data.draw(_sources(world))
    inputs = data.draw(st.lists(st.sampled_from([world["img"], world["bad"], world["imgs"], world["missing"], world["ckpt"], ""]),
                                min_size=1, max_size=3))
    extra = data.draw(_options({
        "--top": NUMBER, "--protocol": st.sampled_from(["center", "flip", "10crop", "multiscale", "x"]),
        "--batch-size": NUMBER, "--model": st.one_of(MODELS, JUNK), "--json": None,
        "--source": st.sampled_from(["auto", "resnet", "torchvision", "timm", "akamaster", "x"]),
    }))
    run_cli(["predict", source, *inputs, *extra], capsys)


# -- recipe overrides --------------------------------------------------------------------------------------
RECIPE_FIELDS = ["iterations", "lr", "batch_size", "milestones", "momentum", "weight_decay", "holdout", "eval_every",
                 "log_every", "precision", "augment", "label_smoothing", "ema_decay", "warmup_until_error", "nesterov",
                 "padding", "grad_clip", "name", "extra", "nope", "lr-", ""]
VALUES = st.one_of(st.sampled_from(["0", "-1", "1e999", "-1e999", "nan", "inf", "true", "[1,2]", "[]", "{}", "null", "1,2,x",
                                    "0.1", "3", "2.5", "bf16", "fp16", "crop-flip", "\"x\"", ",,,", "1e-400"]),
                   JUNK, st.floats(allow_nan=True).map(repr), st.integers().map(str))


@examples(200)
@given(recipe=st.sampled_from(["cifar-paper", "imagenet-paper", "cifar-fast", "digits", "nope"]),
       items=st.lists(st.one_of(st.tuples(st.sampled_from(RECIPE_FIELDS), VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), JUNK),
                      max_size=4))
def test_recipe_overrides_give_a_recipe_or_a_usage_error(recipe: str, items: list[str]) -> None:
    from resnet.train import parse_overrides, resolve_recipe

    try:
        resolved = resolve_recipe(recipe, parse_overrides(items))
    except UsageError as err:
        assert "\n" not in str(err)
        return
    for field in ("lr", "momentum", "weight_decay"):
        assert np.isfinite(getattr(resolved, field)), (items, field)
    assert resolved.iterations >= 1 and resolved.batch_size >= 1


# -- image decoding ----------------------------------------------------------------------------------------
def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    image = {"PNG16": Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257), "GREY": Image.fromarray(pixels[:, :, 0]),
             "CMYK": Image.fromarray(pixels).convert("CMYK"), "P": Image.fromarray(pixels).convert("P")}.get(fmt, Image.fromarray(pixels))
    buffer = io.BytesIO()
    image.save(buffer, {"PNG16": "PNG", "GREY": "PNG", "CMYK": "JPEG", "P": "GIF"}.get(fmt, fmt))
    return buffer.getvalue()


BASES = {fmt: _encoded(fmt) for fmt in ("PNG", "PNG16", "GREY", "JPEG", "CMYK", "GIF", "P", "BMP", "TIFF", "WEBP")}


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 4)) == 0:  # random bytes, sometimes behind a real signature
        magic = draw(st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF"]))
        return magic + draw(st.binary(max_size=300))
    data = bytearray(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["set", "cut", "insert", "truncate"]))
        if kind == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[pos:]
    return bytes(data)


@pytest.fixture()
def small_bomb_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # A mutated header may claim any size; a low limit turns those into fast DecompressionBombErrors
    # instead of legitimate but slow multi-megapixel allocations. The refusal path is what is tested.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)


@pytest.mark.filterwarnings("ignore")  # Pillow warns about the damaged files it still decodes
@examples(300)
@given(data=image_bytes(), channels=st.sampled_from([1, 3]))
def test_image_decoding_gives_pixels_or_a_decode_error(data: bytes, channels: int, tmp_path: Path, small_bomb_limit: None) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(data)
    for decode in (lambda: decode_file(path, channels), lambda: decode_image_tensor(path, channels)):
        try:
            array = decode()
        except DecodeFailure as err:
            assert "\n" not in str(err)
            continue
        assert array.dtype in (np.uint8, torch.uint8) and array.ndim == 3 and channels in array.shape
    try:
        tensor = read_image(path, channels)
    except DataError as err:
        assert str(path) in str(err) and "\n" not in str(err)
    else:
        assert tensor.dtype == torch.uint8 and tensor.shape[0] == channels


# -- state-dict importers ----------------------------------------------------------------------------------
REAL = {k: tuple(v.shape) for k, v in resnet.create_model("resnet8").state_dict().items()}
KEYS = st.one_of(st.sampled_from(sorted(REAL)), st.sampled_from(sorted(REAL)).map(lambda k: "module." + k.replace("fc.", "linear.")),
                 st.sampled_from(["", ".", "module.", "fc", "linear.weight", "_orig_mod.fc.bias", "model.conv1.weight"]), JUNK)
SHAPES = st.lists(st.integers(0, 5), max_size=4).map(tuple)


@st.composite
def state_dicts(draw: st.DrawFn) -> dict[str, object]:
    """A dict of random keys → zero tensors (right or random shapes) or plain values."""
    if draw(st.booleans()):
        keep = draw(st.lists(st.sampled_from(sorted(REAL)), unique=True, max_size=len(REAL)))
        state: dict[str, object] = {k: torch.zeros(REAL[k]) for k in (sorted(REAL) if draw(st.booleans()) else keep)}
    else:
        state = {}
    for key in draw(st.lists(KEYS, max_size=6)):
        value = draw(st.one_of(SHAPES.map(torch.zeros), st.sampled_from([1, 2.5, "x", None, [1, 2], {"a": torch.ones(1)}]),
                               st.just(torch.zeros(REAL.get(key, (1,))))))
        state[key] = value
    return state


def _container(state: dict[str, object], form: str, path: Path) -> Path:
    if form == "safetensors":
        tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and k}
        path = path.with_suffix(".safetensors")
        path.write_bytes(save(tensors, metadata={"resnet": json.dumps({"format": "resnet"})} if tensors else None))
    elif form == "wrapped":
        torch.save({"state_dict": state, "epoch": 3, "arch": "resnet8"}, path)
    else:
        torch.save(state, path)
    return path


@examples(60)
@given(state=state_dicts(), form=st.sampled_from(["plain", "wrapped", "safetensors"]), source=st.sampled_from(ORIGINS),
       strict=st.booleans())
def test_importers_load_or_raise_checkpoint_error(state: dict[str, object], form: str, source: str, strict: bool,
                                                  tmp_path: Path) -> None:
    path = _container(state, form, tmp_path / "weights.pth")
    model = resnet.create_model("resnet8")
    try:
        load_pretrained(model, path, source=source, strict=strict)
    except CheckpointError as err:
        assert "\n" not in str(err)
        return
    if strict:  # every tensor in these files is zero, and a strict load must have set every parameter
        weights = [v for k, v in model.state_dict().items() if v.is_floating_point()]
        assert all(not v.any() for v in weights), (sorted(state), source, form)


@examples(60)
@given(meta=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | JUNK,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(JUNK, inner, max_size=3), max_leaves=8),
       keys=st.lists(st.sampled_from(["format", "spec", "classes", "preprocess", "model", "dataset"]), max_size=4))
def test_our_checkpoint_metadata_loads_or_raises_checkpoint_error(meta: object, keys: list[str], tmp_path: Path) -> None:
    model = resnet.create_model("resnet8")
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    from dataclasses import asdict

    spec = asdict(model.spec)
    spec.pop("extra", None)
    doc: object = {"format": "resnet", "spec": spec, **{k: meta for k in keys}} if keys else meta
    path = tmp_path / "ours.safetensors"
    path.write_bytes(save(tensors, metadata={"resnet": json.dumps(doc)}))
    try:
        model_from_checkpoint(path)
        from resnet.evaluate.sources import resolve_source

        resolve_source(str(path))
    except ResNetError as err:
        assert "\n" not in str(err)
