"""Progressive resizing (``resize_from`` / ``resize_until``): the batched downscale, the side schedule, what the
trainer feeds the network, and an exact resume across a change of side."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torchvision.transforms.v2 import functional as TF

from resnet.data import downscale
from resnet.errors import UsageError
from resnet.train import TrainOptions, train
from resnet.train.distributed import DistContext
from resnet.train.recipes import get_recipe, resolve_recipe
from resnet.train.schedule import RESIZE_STEP_PX, train_side
from resnet.train.tasks import Classification


@pytest.mark.parametrize("side", [16, 20, 28])
def test_downscale_matches_torchvision_antialiased_resize(side: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    want = TF.resize(x, [side, side], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    torch.testing.assert_close(downscale(x, side), want)


def test_downscale_keeps_dtype_and_memory_format_and_passes_full_size_through() -> None:
    x = torch.randn(2, 3, 32, 32).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    out = downscale(x, 24)
    assert out.shape == (2, 3, 24, 24) and out.dtype == torch.bfloat16
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert downscale(x, 32) is x
    flat = torch.full((1, 3, 32, 32), 0.5)
    torch.testing.assert_close(downscale(flat, 16), torch.full((1, 3, 16, 16), 0.5))  # a flat image stays flat
    with pytest.raises(ValueError, match="shrinks images"):
        downscale(x, 40)


def test_side_grows_in_steps_from_resize_from_to_full_at_resize_until() -> None:
    recipe = replace(get_recipe("cifar-fast"), iterations=1000, resize_from=16, resize_until=0.75)
    sides = [train_side(recipe, step, 32) for step in range(1001)]
    assert sides[0] == 16 and sides[749] < 32 and set(sides[750:]) == {32}
    assert sides == sorted(sides) and {s % RESIZE_STEP_PX for s in sides} == {0}
    assert set(sides) == {16, 20, 24, 28, 32}
    off = replace(recipe, resize_from=0)
    assert {train_side(off, step, 32) for step in range(0, 1001, 50)} == {32}


@pytest.mark.parametrize("field, value, message", [
    ("resize_from", "-4", "resize_from must be 0"),
    ("resize_until", "0", "resize_until in"),
    ("resize_until", "1.5", "resize_until in"),
])
def test_bad_resize_fields_are_refused_in_one_line(field: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_recipe("cifar-fast", {field: value})
    with pytest.raises(UsageError, match="augment rrc already picks"):
        resolve_recipe("finetune", {"resize_from": "16"})


def _task(overrides: dict[str, str]) -> Classification:
    opts = TrainOptions(data="digits", recipe="digits", overrides=overrides, progress=False, tensorboard=False)
    task = Classification(opts)
    task.load_data(resolve_recipe("digits", overrides), torch.device("cpu"), DistContext(), None)
    return task


def test_the_network_sees_small_batches_first_then_full_ones_and_resumes_mid_ramp() -> None:
    task = _task({"iterations": "40", "resize_from": "16", "resize_until": "0.5"})
    sides = [x.shape[-1] for (x, _), _ in zip(task.batches(0), range(40))]
    assert sides[0] == 16 and sides[19] == 28 and set(sides[20:]) == {32} and sides == sorted(sides)
    later = [x.shape[-1] for (x, _), _ in zip(task.batches(13), range(27))]
    assert later == sides[13:]  # a resumed stream picks up the side where it was


def test_resize_from_not_below_the_images_is_refused() -> None:
    task = _task({"resize_from": "32"})
    with pytest.raises(UsageError, match="resize_from 32 is not smaller than the 32-pixel"):
        next(task.batches(0))


def test_progressive_resizing_resumes_bit_for_bit(tmp_path: Path) -> None:
    """The side changes between the interruption and the end (16 → 32 px over the first half): an interrupted
    run resumed ends with exactly the weights of an uninterrupted one."""
    overrides = {"iterations": "12", "eval_every": "12", "log_every": "2", "batch_size": "16", "resize_from": "16",
                 "resize_until": "0.5"}

    def run(out: Path, **kw: object) -> dict:
        return train(TrainOptions(data="digits", recipe="cifar-fast", overrides=overrides, out=out, progress=False,
                                  tensorboard=False, **kw))  # type: ignore[arg-type]

    run(tmp_path / "whole")
    records = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    # logged every 2 steps, the side of the step just taken: 16 + 16 * step / 6 rounded down to 4 px (steps 1, 3, 5)
    assert [r["side"] for r in records if r["kind"] == "train"] == [16, 24, 28, 32, 32, 32]
    assert not run(tmp_path / "parts", stop_after=4)["finished"]
    assert run(tmp_path / "parts", resume=True)["finished"]
    a, b = load_file(tmp_path / "whole" / "last.safetensors"), load_file(tmp_path / "parts" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
