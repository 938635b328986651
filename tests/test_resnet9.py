"""Page's ResNet-9 (the "pool" block of ``models/specs.py``) and ``cifar94``, the recipe made for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import resnet
from resnet.models.complexity import count_macs, count_params
from resnet.models.specs import ModelSpec
from resnet.train import TrainOptions, train
from resnet.train.recipes import get_recipe


def test_resnet9_matches_pages_network() -> None:
    """6,573,120 parameters and 379.3 M multiply-adds as in Page's code (a classifier without bias); the
    reproductions that give the classifier a bias count 6,573,130."""
    model = resnet.models.create_model("resnet9")
    assert count_params(model) == 6_573_120
    assert count_params(resnet.models.create_model("resnet9", fc_bias=True)) == 6_573_130
    assert round(count_macs(model, 32).macs / 1e6, 1) == 379.3
    assert model.spec.depth == 9
    assert [(i["num_chs"], i["reduction"]) for i in model.feature_info] == [(128, 2), (256, 4), (512, 8)]
    assert isinstance(model.avgpool, torch.nn.AdaptiveMaxPool2d) and model.fc.bias is None


def test_resnet9_head_scales_the_logits_and_the_residual_pairs_add() -> None:
    torch.manual_seed(0)
    model = resnet.models.create_model("resnet9").eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.forward_features(x)
    assert torch.allclose(model(x), 0.125 * model.fc(torch.flatten(model.avgpool(features), 1)))
    pair = model.layer1[2]
    y = torch.randn(1, 128, 16, 16)
    assert torch.allclose(pair(y), y + pair.second(pair.first(y)))
    plain = resnet.models.create_model("resnet9", shortcut="none").layer1[2]
    assert not plain.residual


def test_resnet9_lite_is_a_third_of_the_work_and_pools_before_batch_norm() -> None:
    """airbench94's widths (64, 256, 256) in Page's network: 2,015,008 parameters, 133.0 M multiply-adds (0.35x
    ResNet-9), each stage's max-pool between its opening convolution and that convolution's batch norm."""
    model = resnet.models.create_model("resnet9_lite")
    assert count_params(model) == 2_015_008
    assert round(count_macs(model, 32).macs / 1e6, 1) == 133.0
    opening = model.layer1[0]
    assert [name for name, _ in opening.named_children()] == ["conv", "pool", "bn", "relu"]
    assert isinstance(model.layer1[1], torch.nn.Identity)
    assert opening(torch.randn(1, 32, 32, 32)).shape == (1, 64, 16, 16)


def test_pooling_first_keeps_the_weights_and_the_evaluated_function() -> None:
    """Max-pooling commutes with batch norm in evaluation (a rising per-channel map while its scale is positive)
    and with ReLU, so the same state dict gives the same outputs pooled before or after them; in training the
    batch statistics are those of the pooled values, so the two differ there."""
    torch.manual_seed(0)
    early = resnet.models.create_model("resnet9_lite")
    late = resnet.models.create_model("resnet9_lite", pool_first=False)
    for m in early.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(), m.running_mean.normal_(), m.running_var.uniform_(0.5, 2)
    late.load_state_dict(early.state_dict())  # the same keys and shapes
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(early.eval()(x), late.eval()(x), atol=1e-5)
    assert not torch.allclose(early.train()(x), late.train()(x), atol=1e-3)
    with pytest.raises(ValueError, match="pool_first needs the 'pool' block"):
        resnet.models.create_model("resnet20", pool_first=True)


def test_activation_swaps_every_relu_of_a_pool_network_and_keeps_its_weights() -> None:
    """``activation`` (airbench94's GELU, Page's CELU) replaces the stem's and every stage's ReLU; it has no
    parameters, so a ReLU network's state dict loads as is, and the function changes. Other blocks refuse it."""
    torch.manual_seed(0)
    relu = resnet.models.create_model("resnet9_lite").eval()
    gelu = resnet.models.create_model("resnet9_lite", activation="gelu").eval()
    gelu.load_state_dict(relu.state_dict())
    kinds = {type(m) for m in gelu.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.GELU, torch.nn.CELU))}
    assert kinds == {torch.nn.GELU} and count_params(gelu) == count_params(relu)
    assert sum(isinstance(m, torch.nn.GELU) for m in gelu.modules()) == 8  # stem, 3 opening convs, 2 pairs of 2
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(gelu(x), relu(x), atol=1e-4)
    assert isinstance(resnet.models.create_model("resnet9", activation="celu").layer2[0].relu, torch.nn.CELU)
    with pytest.raises(ValueError, match="activation 'gelu' needs the 'pool' block"):
        resnet.models.create_model("resnet20", activation="gelu")


def test_a_recipe_trains_and_saves_its_activation(tmp_path: Path) -> None:
    """The recipe field reaches the network, the checkpoint's spec carries it, so the weights load back into a GELU
    network; a name that is not an activation is refused in one line naming the choices."""
    from resnet.errors import UsageError
    from resnet.inference.load import load_network

    overrides = {"iterations": "2", "eval_every": "2", "batch_size": "16", "whiten_stem": "64", "ema_every": "2",
                 "activation": "gelu"}
    out = tmp_path / "run"
    train(TrainOptions(data="digits", recipe="cifar94", overrides=overrides, out=out, progress=False, tensorboard=False))
    net = load_network(str(out))
    assert net.model.spec.activation == "gelu" and isinstance(net.model.layer3[2].first.relu, torch.nn.GELU)
    with pytest.raises(UsageError, match="activation must be one of relu, gelu, celu"):
        train(TrainOptions(data="digits", recipe="cifar94", overrides={**overrides, "activation": "swish"},
                           out=tmp_path / "bad", progress=False, tensorboard=False))


def test_pool_network_metadata_reads_back_and_altered_metadata_is_refused() -> None:
    """A "pool" network's spec holds a stage without residual pairs (layers (1, 0, 1)); its saved metadata reads
    back as the same spec, while negative counts or widths are refused as an altered file."""
    from dataclasses import asdict

    from resnet.errors import CheckpointError
    from resnet.models.interop import spec_from_metadata

    spec = resnet.models.get_spec("resnet9_lite", activation="gelu")
    fields = {k: v for k, v in asdict(spec).items() if k != "extra"}
    assert spec_from_metadata({"spec": fields}, "run") == spec
    for bad in ({"layers": [1, -1, 1]}, {"widths": [64, 0, 256]}):
        with pytest.raises(CheckpointError, match="architecture metadata is invalid"):
            spec_from_metadata({"spec": {**fields, **bad}}, "run")


@pytest.mark.parametrize("bad, match", [
    (dict(stem="imagenet"), "cifar stem"), (dict(shortcut="A"), "identity shortcuts"),
    (dict(output_stride=4), "output_stride"), (dict(layers=(1, -1, 1)), "residual-pair counts"),
    (dict(head_pool="median"), "head_pool"), (dict(logit_scale=0.0), "logit_scale"),
    (dict(activation="swish"), "activation must be one of"),
])
def test_pool_block_refuses_what_it_cannot_build(bad: dict, match: str) -> None:
    spec = resnet.models.get_spec("resnet9")
    with pytest.raises(ValueError, match=match):
        ModelSpec(**{**{f: getattr(spec, f) for f in ("block", "layers", "widths", "stem", "stem_width")}, **bad}).validate()


def test_cifar94_trains_its_network_with_frozen_batch_norm_scales(tmp_path: Path) -> None:
    """The recipe names its network, so a run without one trains ResNet-9 lite (v1: ResNet-9); the batch-norm
    scales stay at 1 while their shifts and the convolutions learn."""
    recipe = get_recipe("cifar94")
    assert recipe.model == "resnet9_lite" and recipe.bn_scale_frozen and (recipe.batch_size, recipe.lr) == (256, 0.3)
    assert recipe.bias_lr_scale == 64 and recipe.iterations == 2744
    assert recipe.dirac_init and recipe.ema_copy_back and (recipe.ema_every, recipe.ema_ramp) == (10, 3.0)
    assert (get_recipe("cifar94@4").lr, get_recipe("cifar94@4").iterations) == (0.2, 2744)
    third = get_recipe("cifar94@3")  # the same 14 epochs at batch 512, pulled back over the same 2,560 images
    assert (third.batch_size, third.lr, third.iterations, third.ema_every, third.dirac_init) == (512, 0.4, 1372, 5, True)
    second = get_recipe("cifar94@2")
    assert (second.model, second.ema_decay, second.ema_every, second.ema_copy_back, second.dirac_init) == (
        "resnet9_lite", 0.99, 1, False, False)
    assert (second.batch_size, second.iterations) == (512, 1372)
    first = get_recipe("cifar94@1")
    assert (first.model, first.iterations, first.bias_lr_scale, first.dirac_init) == ("resnet9", 980, 1.0, False)
    assert (first.batch_size, first.lr) == (512, 0.4)
    overrides = {"iterations": "5", "eval_every": "5", "log_every": "1", "batch_size": "16", "whiten_stem": "64",
                 "ema_every": "5"}
    out = tmp_path / "run"
    train(TrainOptions(data="digits", recipe="cifar94", overrides=overrides, out=out, progress=False, tensorboard=False))
    header = json.loads((out / "recipe.json").read_text())
    assert header["model"] == "resnet9_lite"
    weights = load_file(out / "last.safetensors")
    scales = [k for k in weights if k.endswith("bn.weight") or k == "bn1.weight"]
    shifts = [k.replace("weight", "bias") for k in scales]
    assert len(scales) == 8
    assert all(torch.equal(weights[k], torch.ones_like(weights[k])) for k in scales)
    assert any(not torch.equal(weights[k], torch.zeros_like(weights[k])) for k in shifts)


def test_bf16_asked_for_without_native_bf16_runs_fp32_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import resnet.train.precision as precision

    monkeypatch.setattr(precision, "has_native_bf16", lambda: False)
    out = tmp_path / "run"
    train(TrainOptions(model="resnet8", data="digits", overrides={"iterations": "2", "batch_size": "16", "holdout": "0",
                                                                  "precision": "bf16", "eval_every": "2"},
                       out=out, progress=True, tensorboard=False))
    header = json.loads((out / "recipe.json").read_text())
    assert header["precision"] == "float32"
    assert "no native bf16" in header["precision_note"]
    assert capsys.readouterr().out.count("no native bf16") == 1


def test_cifar94_resumes_bit_for_bit(tmp_path: Path) -> None:
    """ResNet-9 lite with two core replicas, frozen batch-norm scales, 64x the lr for their shifts, a whitened stem,
    identity-initialised convolutions and the weights pulled back to their ramped average every 10 steps: an
    interrupted run resumed ends with exactly the weights of an uninterrupted one."""
    overrides = {"iterations": "12", "eval_every": "12", "log_every": "2", "batch_size": "16", "whiten_stem": "64"}

    def run(out: Path, **kw: object) -> dict:
        return train(TrainOptions(data="digits", recipe="cifar94", overrides=overrides, out=out, progress=False,
                                  tensorboard=False, **kw))  # type: ignore[arg-type]

    run(tmp_path / "whole")
    assert not run(tmp_path / "parts", stop_after=7)["finished"]
    assert run(tmp_path / "parts", resume=True)["finished"]
    a, b = load_file(tmp_path / "whole" / "last.safetensors"), load_file(tmp_path / "parts" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
