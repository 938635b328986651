"""Layer-response and gradient measurements checked against values computed by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import resnet
from resnet.analysis.experiments import gradients_markdown, write_json
from resnet.analysis.gradients import main_path_layers, measure_gradients, run_gradient_experiment, strip_batchnorm
from resnet.analysis.responses import measure_responses, response_layers
from resnet.errors import UsageError

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: see conftest


def _set_bn(bn: nn.BatchNorm2d, weight: torch.Tensor, bias: torch.Tensor) -> None:
    # Running mean 0 and variance 1 - eps make eval-mode BN exactly weight * x + bias.
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.copy_(weight)
        bn.bias.copy_(bias)


def test_response_layers_are_the_bn_after_every_3x3_conv_in_order() -> None:
    names = [n for n, _ in response_layers(resnet.create_model("resnet20"))]
    assert len(names) == 19  # stem + 2 per block x 9 blocks
    assert names[:3] == ["bn1", "layer1.0.bn1", "layer1.0.bn2"] and names[-1] == "layer3.2.bn2"
    assert len(response_layers(resnet.create_model("plain14"))) == 13
    with pytest.raises(UsageError, match="pre-activation"):
        response_layers(resnet.create_model("resnet20", preact=True))


def test_response_std_of_a_hand_set_stem_is_twice_the_input_std() -> None:
    model = resnet.create_model("resnet8", num_classes=10)
    # A centred delta kernel copies input channel 0 into every output channel (padding 1 keeps the borders).
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[:, 0, 1, 1] = 1.0
    _set_bn(model.bn1, torch.full((16,), 2.0), torch.zeros(16))
    x = torch.randn(10, 3, 8, 8) * 1.5 + 0.3
    stem = measure_responses(model, [x[:3], x[3:7], x[7:]])[0]
    expected = 2.0 * x[:, 0].double().std(unbiased=False).item()
    assert stem.name == "bn1"
    assert stem.std == pytest.approx(expected, rel=1e-5)
    assert stem.channel_std == pytest.approx(expected, rel=1e-5)
    assert stem.mean == pytest.approx(2.0 * x[:, 0].double().mean().item(), abs=1e-5)


def test_response_std_pools_the_channel_means_set_by_beta() -> None:
    model = resnet.create_model("resnet8", num_classes=10)
    with torch.no_grad():
        model.layer1[0].conv2.weight.zero_()
    beta = torch.arange(16, dtype=torch.float32)
    _set_bn(model.layer1[0].bn2, torch.ones(16), beta)
    results = {r.name: r for r in measure_responses(model, [torch.randn(4, 3, 8, 8)])}
    r = results["layer1.0.bn2"]
    # Every output of channel c is exactly c: pooled std is the std of 0..15, within-channel std is 0.
    assert r.std == pytest.approx(math.sqrt((16**2 - 1) / 12), rel=1e-6)
    assert r.channel_std == pytest.approx(0.0, abs=1e-6)
    assert r.mean == pytest.approx(7.5, rel=1e-6)


def test_response_std_matches_a_direct_computation_and_ignores_batching() -> None:
    model = resnet.create_model("plain14", num_classes=10)
    model.train()
    with torch.no_grad():  # give BN non-trivial running statistics
        for _ in range(3):
            model(torch.randn(16, 3, 16, 16))
    model.eval()
    x = torch.randn(12, 3, 16, 16)
    seen: dict[str, torch.Tensor] = {}
    layers = response_layers(model)
    handles = [bn.register_forward_hook(lambda _m, _i, out, n=n: seen.__setitem__(n, out.detach().clone())) for n, bn in layers]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    whole = measure_responses(model, [x])
    split = measure_responses(model, [x[:5], x[5:6], x[6:]])
    for a, b, (name, _) in zip(whole, split, layers):
        direct = seen[name].double()
        assert a.std == pytest.approx(direct.std(unbiased=False).item(), rel=1e-6)
        per_channel = direct.transpose(0, 1).reshape(direct.shape[1], -1).std(dim=1, unbiased=False).mean().item()
        assert a.channel_std == pytest.approx(per_channel, rel=1e-6)
        assert b.std == pytest.approx(a.std, rel=1e-6)  # float32 convs differ slightly by batch size
    assert not model.training


@pytest.mark.parametrize("name", ["plain8", "resnet8"])
@pytest.mark.parametrize("batchnorm", [True, False])
def test_gradient_norms_equal_autograd_grad(name: str, batchnorm: bool) -> None:
    model = resnet.create_model(name, num_classes=10)
    if not batchnorm:
        strip_batchnorm(model)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss, grads = measure_gradients(model, x, y)
    by_name = {g.name: g for g in grads}
    assert [g.name for g in grads] == [n for n, _ in main_path_layers(model)]
    assert list(by_name)[0] == "conv1" and list(by_name)[-1] == "fc" and len(grads) == 8

    # Direct: the same loss, gradients of two weights and of one layer's response (its BN output; the conv output without BN).
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    out: dict[str, torch.Tensor] = {}
    response = model.layer2[0].conv1 if not batchnorm else model.layer2[0].bn1
    h = response.register_forward_hook(lambda _m, _i, o: out.__setitem__("o", o))
    direct_loss = nn.functional.cross_entropy(model(x), y)
    h.remove()
    gw, gfc, go = torch.autograd.grad(direct_loss, [model.layer2[0].conv1.weight, model.fc.weight, out["o"]])
    assert loss == pytest.approx(direct_loss.item(), rel=1e-6)
    assert by_name["layer2.0.conv1"].weight == pytest.approx(gw.norm().item(), rel=1e-5)
    assert by_name["fc"].weight == pytest.approx(gfc.norm().item(), rel=1e-5)
    assert by_name["layer2.0.conv1"].backprop == pytest.approx(go.norm().item(), rel=1e-5)
    # Measuring neither trains the weights nor leaves gradients behind.
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k and "num_batches" not in k)


def test_gradient_experiment_trains_between_measurements_and_records_divergence() -> None:
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))

    def batches():
        while True:
            yield x, y

    def factory() -> nn.Module:
        torch.manual_seed(0)
        return resnet.create_model("resnet8", num_classes=10)

    run = run_gradient_experiment(factory, (x, y), batches(), steps=3, lr=0.05, batchnorm=True, model_name="resnet8", depth=8, residual=True)
    assert [s.step for s in run.snapshots] == [0, 3] and len(run.losses) == 3 and run.diverged_at is None
    assert run.snapshots[1].loss < run.snapshots[0].loss  # 3 steps on the measurement batch itself lower its loss

    wild = run_gradient_experiment(factory, (x, y), batches(), steps=6, lr=1e8, batchnorm=False, model_name="resnet8", depth=8, residual=True)
    assert wild.diverged_at is not None and wild.diverged_at <= 6
    text = json.dumps(wild.as_dict(), allow_nan=False)  # non-finite values become null, JSON stays valid
    assert "null" in text
    table = gradients_markdown([run, wild], "random tensors", 3, 8)
    assert "| ResNet-8 | yes | 0.05 |" in table and f"| {wild.diverged_at} |" in table


def test_write_json_refuses_nan(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"v": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_gradient_run_round_trips_through_json() -> None:
    from resnet.analysis.gradients import run_from_dict

    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    run = run_gradient_experiment(
        lambda: resnet.create_model("plain8", num_classes=10), (x, y), iter([(x, y)]), steps=1, lr=0.01, batchnorm=True,
        model_name="plain8", depth=8, residual=False,
    )
    back = run_from_dict(json.loads(json.dumps(run.as_dict())))
    assert back.as_dict() == run.as_dict()


def test_gradient_study_uses_the_papers_warm_up_rate_for_110_layers() -> None:
    from resnet.analysis.gradients import gradient_study
    from resnet.data import ArrayDataset

    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    data = ArrayDataset(images, torch.arange(8) % 10, [str(i) for i in range(10)], (0.5,) * 3, (0.25,) * 3, name="t", source="t")
    runs = gradient_study(data, [8, 110], steps=0, batch_size=4, lr=0.1, lr_no_bn=0.02, no_bn=True)
    assert [(r.label, r.batchnorm, r.lr) for r in runs] == [
        ("plain-8", True, 0.1), ("ResNet-8", True, 0.1), ("plain-8", False, 0.02), ("ResNet-8", False, 0.02),
        ("plain-110", True, pytest.approx(0.01)), ("ResNet-110", True, pytest.approx(0.01)),
        ("plain-110", False, 0.02), ("ResNet-110", False, 0.02),
    ]
    assert all(len(r.snapshots) == 1 for r in runs)  # steps=0: measured at initialisation only
    assert [r.lr for r in gradient_study(data, [110], steps=0, batch_size=4, lr=0.1, warmup=False)] == [0.1, 0.1]
    # With the same seed a plain net and its option-A twin start from identical weights.
    plain, res = runs[0].snapshots[0].layers, runs[1].snapshots[0].layers
    assert [g.name for g in plain] == [g.name for g in res]


def test_summary_of_a_run_that_diverged_at_its_first_step() -> None:
    from resnet.analysis.gradients import GradientRun, GradientSnapshot, LayerGradient, summarize

    layers = [LayerGradient("conv1", 4.0, 8.0), LayerGradient("layer1.0.conv1", 2.0, 1.0), LayerGradient("fc", 1.0, 1.0)]
    run = GradientRun("resnet8", 8, True, False, 0.01, diverged_at=1)
    run.snapshots = [GradientSnapshot(0, 2.3, layers), GradientSnapshot(0, float("nan"), [LayerGradient(g.name, math.nan, math.nan) for g in layers])]
    s = summarize(run)
    # The second measurement (also after 0 completed steps) must not overwrite the one at initialisation.
    assert (s["init_loss"], s["init_ratio"], s["init_bp_ratio"]) == (2.3, 2.0, 8.0)
    assert (s["trained_loss"], s["trained_ratio"], s["trained_bp_ratio"]) == (None, None, None)
    table = gradients_markdown([run], "x", 1, 4)
    assert "| ResNet-8 | no | 0.01 | 2.300 | n/a | 2.000 | n/a | 8.000 | n/a | 1 |" in table


def test_json_text_keeps_lists_of_numbers_on_one_line() -> None:
    from resnet.analysis.experiments import json_text

    obj = {"runs": [{"name": "a", "values": [1.5, None, 3]}], "n": 2}
    text = json_text(obj)
    assert json.loads(text) == obj
    assert '"values": [1.5, null, 3]' in text and text.count("\n") == 8
    with pytest.raises(ValueError):
        json_text({"runs": [{"v": [float("inf")]}]})
