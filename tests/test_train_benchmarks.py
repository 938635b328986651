"""benchmarks/train_throughput.py and train_profile.py: the step they time is a real training step, and the
profile's rows add up to the step."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from train_profile import CATEGORIES, step_shares  # noqa: E402
from train_throughput import make_step  # noqa: E402


@pytest.mark.parametrize("kw", [dict(channels_last=False, amp=None), dict(channels_last=True, amp=torch.bfloat16),
                                dict(channels_last=True, amp=None, bf16_weights=True, optimizer="loop"),
                                dict(channels_last=True, amp=None, replicas=2),
                                dict(channels_last=True, amp=torch.bfloat16, replicas=2, ghost_batch=1)])
def test_every_lever_takes_real_training_steps(kw: dict) -> None:
    seen: list[torch.Tensor] = []
    original = torch.optim.SGD.step

    def spy(self: torch.optim.SGD, *args: object, **kwargs: object) -> object:
        seen.append(self.param_groups[0]["params"][0].detach().clone())
        return original(self, *args, **kwargs)

    torch.optim.SGD.step = spy  # type: ignore[method-assign]
    try:
        step = make_step("resnet8", 4, compiled=False, **kw)
        step()
        step()
    finally:
        torch.optim.SGD.step = original  # type: ignore[method-assign]
    assert len(seen) == 2 and not torch.equal(seen[0], seen[1])  # the weights moved between the two steps


def test_profile_rows_cover_the_step() -> None:
    shares = step_shares(make_step("resnet8", 4, channels_last=True, amp=None, compiled=False), steps=2)
    assert abs(sum(shares.values()) - 1.0) < 1e-6
    assert shares["convolution forward"] > 0 and shares["convolution backward"] > 0
    assert set(shares) <= {name for name, _ in CATEGORIES} | {"other (copies, casts, allocation)"}


def test_sides_times_each_side_and_the_recipes_resizing_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    from argparse import Namespace

    from train_throughput import side_rates

    args = Namespace(model="resnet8", batch=2, steps=1, rounds=1, sides="32,28,24,20,16", recipe="cifar-fast",
                     set=["resize_from=16", "iterations=40"], compile=False)
    side_rates(args, None)
    out = capsys.readouterr().out
    assert "| 16 |" in out and "| 32 |" in out and "0.25x |" in out  # a 16-px image has a quarter of the pixels
    assert "resize_from=16, resize_until=0.75:" in out and "x the images/s of the same run at 32 px" in out
    with pytest.raises(SystemExit, match=r"visits sides \[16, 20\] that --sides does not time"):
        side_rates(Namespace(**{**vars(args), "sides": "32,28,24"}), None)


def test_conv_split_finds_every_convolution_and_times_its_three_products() -> None:
    from conv_split import ConvShape, conv_shapes, conv_table, part_calls

    from resnet import create_model

    model = create_model("resnet8", num_classes=10)
    shapes = conv_shapes(model, 32)
    assert sum(count for _, count, _ in shapes) == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert [stem for _, _, stem in shapes].count(True) == 1 and shapes[0][2]  # the stem, seen first
    assert ConvShape(16, 32, 3, 2, 1, 32) in [s for s, _, _ in shapes]  # the second stage's strided entry
    shape = ConvShape(4, 6, 3, 2, 1, 9)
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    w = torch.randn(6, 4, 3, 3, requires_grad=True)
    torch.manual_seed(0)
    calls = part_calls(shape, 2, torch.float32, channels_last=True)
    assert calls["forward"]().shape == (2, 6, 5, 5) and shape.macs(2) == 2 * 5 * 5 * 6 * 4 * 9
    assert calls["input gradient"]().shape == x.shape and calls["weight gradient"]().shape == w.shape
    table = conv_table("resnet8", 2, dtype=torch.float32, channels_last=True, peak_gflops=100.0, repeats=1, rounds=1)
    assert "| 3x3 3->16 @ 32 (stem) | 1 |" in table and "| **all layers** |" in table
    assert "backward / forward:" in table and "against a 100 GFLOP/s matrix product" in table


def test_conv_split_gradients_are_the_convolutions_own() -> None:
    from conv_split import ConvShape, products

    torch.manual_seed(0)
    shape = ConvShape(3, 5, 3, 2, 1, 7)
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(x, w, stride=2, padding=1)
    grad = torch.randn_like(out)
    out.backward(grad)
    calls = products(shape, x.detach(), w.detach(), grad)
    torch.testing.assert_close(calls["forward"](), out.detach())
    torch.testing.assert_close(calls["input gradient"](), x.grad)
    torch.testing.assert_close(calls["weight gradient"](), w.grad)


def test_sides_with_compile_times_one_model_through_the_sides(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from argparse import Namespace

    import train_throughput

    compiled: list[torch.nn.Module] = []
    options: list[dict] = []
    monkeypatch.setattr(torch, "compile",  # the plumbing, not Inductor's speed
                        lambda m, **kw: compiled.append(m) or options.append(kw) or m)
    steps, first_step_s = train_throughput.compiled_side_steps("resnet8", 2, [32, 16, 24], None)
    assert list(steps) == ["16 px compiled", "24 px compiled", "32 px compiled"] and len(compiled) == 1
    assert options == [{}]  # as the trainer compiles
    train_throughput.compiled_side_steps("resnet8", 2, [16], None, dynamic=True)
    assert options[-1] == {"dynamic": True}
    assert set(first_step_s) == {16, 24, 32} and all(s > 0 for s in first_step_s.values())
    before = [p.detach().clone() for p in compiled[0].parameters()]
    steps["24 px compiled"]()
    assert any(not torch.equal(a, b) for a, b in zip(before, compiled[0].parameters()))  # a real training step
    train_throughput.side_rates(Namespace(model="resnet8", batch=2, steps=1, rounds=1, sides="32,28,24,20,16",
                                          recipe="cifar-fast", set=["resize_from=16", "resize_until=0.5",
                                                                    "iterations=8"], compile=True,
                                          dynamic=False), None)
    out = capsys.readouterr().out
    assert "| compiled images/s | compiled / eager | first compiled step, s |" in out
    assert "compiled: " in out and "x the eager resized run, its " in out and "min of compilation included" in out
