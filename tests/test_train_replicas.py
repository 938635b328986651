"""Core replicas (data parallelism over CPU cores in one process): same gradients, deterministic, resumable."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from resnet import create_model
from resnet.train import TrainOptions, train
from resnet.train.replicas import MIN_IMAGES_PER_REPLICA, CoreReplicas, replica_count

CPU = torch.device("cpu")


def _no_bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


def _batch(n: int, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("n", [12, 7])  # 7 over 2 slices: 4 + 3, the weights must follow the sizes
def test_without_batch_norm_the_gradient_is_the_whole_batchs(n: int) -> None:
    net, reference = _no_bn_net(), _no_bn_net()
    x, y = _batch(n)
    cores = CoreReplicas(net, 2)
    loss, logits = cores.forward_backward(x, y, amp=None, label_smoothing=0.1)
    expected = F.cross_entropy(reference(x), y, label_smoothing=0.1)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(logits, reference(x).detach(), rtol=1e-6, atol=1e-6)
    for p, q in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
    cores.close()


def test_with_batch_norm_each_slice_normalises_itself_and_the_first_keeps_the_statistics() -> None:
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10).train()
    twin = copy.deepcopy(model)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    cores = CoreReplicas(model, 2)
    cores.forward_backward(x, y, amp=None, label_smoothing=0.0)
    # By hand: each half's mean loss, weighted by half, on its own copy; statistics from the first half.
    halves = [twin, copy.deepcopy(twin)]
    for net, xs, ys in zip(halves, x.chunk(2), y.chunk(2)):
        (F.cross_entropy(net(xs), ys) * 0.5).backward()
    for (name, p), q0, q1 in zip(model.named_parameters(), halves[0].parameters(), halves[1].parameters()):
        torch.testing.assert_close(p.grad, q0.grad + q1.grad, rtol=1e-4, atol=1e-6, msg=name)
    for (name, b), b0 in zip(model.named_buffers(), halves[0].buffers()):
        torch.testing.assert_close(b, b0, msg=name)
    cores.close()


def test_replicas_follow_the_main_model_and_repeat_bit_for_bit() -> None:
    def run() -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = create_model("resnet8", num_classes=10).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        cores = CoreReplicas(model, 2)
        x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            cores.forward_backward(x, y, amp=None, label_smoothing=0.0)
            opt.step()
        cores._sync()
        for mine, main in zip(cores.replicas[1].state_dict().values(), model.state_dict().values()):
            assert torch.equal(mine, main)  # the second replica starts each step from the stepped weights
        cores.close()
        return [t.clone() for t in model.state_dict().values()]

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_map_runs_slices_in_order_under_inference_mode() -> None:
    net = _no_bn_net().eval()
    cores = CoreReplicas(net, 2)
    x, _ = _batch(9)
    seen_grad_mode: list[bool] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        seen_grad_mode.append(torch.is_grad_enabled())
        return net(t)

    with torch.no_grad():
        expected = net(x)
    torch.testing.assert_close(cores.map(fn, x), expected)
    assert seen_grad_mode == [False, False]
    cores.close()


def test_replica_count_rules() -> None:
    auto = replica_count(0, 128, device=CPU, distributed=False, compiled=False)
    assert 1 <= auto <= max(1, torch.get_num_threads())
    assert replica_count(3, 128, device=CPU, distributed=False, compiled=False) == 3
    assert replica_count(1, 128, device=CPU, distributed=False, compiled=False) == 1
    assert replica_count(4, 2 * MIN_IMAGES_PER_REPLICA, device=CPU, distributed=False, compiled=False) == 2
    assert replica_count(4, MIN_IMAGES_PER_REPLICA, device=CPU, distributed=False, compiled=False) == 1
    for kw in ({"device": torch.device("cuda")}, {"distributed": True}, {"compiled": True}):
        assert replica_count(2, 128, **{"device": CPU, "distributed": False, "compiled": False, **kw}) == 1


def test_core_replicas_need_two_workers() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        CoreReplicas(_no_bn_net(), 1)


TINY = {"iterations": "16", "eval_every": "8", "log_every": "4", "batch_size": "32", "holdout": "100", "core_replicas": "2"}


def _opts(out: Path, **kw: object) -> TrainOptions:
    base = dict(model="resnet8", data="digits", overrides=dict(TINY), out=out, progress=False, tensorboard=False)
    base.update(kw)
    return TrainOptions(**base)  # type: ignore[arg-type]


def test_a_replicated_run_resumes_exactly_and_records_its_replicas(tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    summary = train(_opts(whole))
    # 16 iterations: the training error is below chance (90 %); held-out scores still sit at chance on some CPUs
    assert summary["finished"] and summary["final"]["train_error"] < 90
    train(_opts(parts, stop_after=5))
    train(_opts(parts, resume=True))
    a, b = load_file(str(whole / "last.safetensors")), load_file(str(parts / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    import json

    header = json.loads((whole / "recipe.json").read_text())
    assert header["core_replicas"] == 2 and header["recipe"]["core_replicas"] == 2
    off = train(_opts(tmp_path / "off", overrides={**TINY, "core_replicas": "1"}))
    assert off["weights_digest"] != summary["weights_digest"]  # one replica normalises the whole batch at once
