"""Detection / segmentation on Penn-Fudan: the data source and its bad input, training (loss falls, resume),
``resnet eval`` / ``resnet predict`` on the runs, and the backbone-degradation experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.cli import main
from resnet.data.pennfudan import load_pennfudan, read_sample, scan_pennfudan
from resnet.errors import DataError
from resnet.train import TrainOptions
from resnet.train import train as train_dense
from resnet.train.metrics import read_metrics

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def pennfudan_dir() -> Path:
    from conftest import find_shared

    shared = find_shared()
    path = shared / "data" / "pennfudan" if shared else None
    if path is None or not (path / "PNGImages").is_dir():
        pytest.skip("../shared/data/pennfudan is not present")
    return path


def _write_sample(root: Path, name: str, photo_hw: tuple[int, int] = (40, 30), mask_hw: tuple[int, int] | None = None,
                  ids: tuple[int, ...] = (1,), annotated: int | None = None) -> None:
    for sub in ("PNGImages", "PedMasks", "Annotation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    h, w = photo_hw
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "PNGImages" / f"{name}.png")
    mh, mw = mask_hw or photo_hw
    mask = np.zeros((mh, mw), dtype=np.uint8)
    for k, v in enumerate(ids):
        mask[5 + 10 * k: 12 + 10 * k, 4:20] = v
    Image.fromarray(mask, mode="L").save(root / "PedMasks" / f"{name}_mask.png")
    n = len(ids) if annotated is None else annotated
    lines = [f'Original label for object {i} "PASpersonWalking" : "PennFudanPed"' for i in range(1, n + 1)]
    (root / "Annotation" / f"{name}.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture()
def bad_tree(tmp_path: Path) -> Path:
    root = tmp_path / "pf"
    _write_sample(root, "good1", ids=(1, 2))
    _write_sample(root, "good2")
    _write_sample(root, "good3")
    _write_sample(root, "size", mask_hw=(20, 30))
    _write_sample(root, "empty", ids=())
    _write_sample(root, "range", ids=(1, 3), annotated=2)
    _write_sample(root, "broken")
    (root / "PNGImages" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    Image.new("RGB", (30, 40)).save(root / "PNGImages" / "nomask.png")
    return root


def test_boxes_come_from_the_masks(bad_tree: Path) -> None:
    items, _ = scan_pennfudan(bad_tree)
    sample = read_sample(next(i for i in items if i.name == "good1"), 40)
    assert sample.image.shape == (3, 53, 40) and sample.masks.shape == (2, 53, 40)
    assert sample.labels.tolist() == [1, 1]
    for box, mask in zip(sample.boxes, sample.masks):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_bad_samples_are_skipped_and_counted(bad_tree: Path) -> None:
    with pytest.warns(UserWarning, match="skipping"):
        train, test = load_pennfudan(bad_tree, 40, test_images=0)
    assert sorted(s.name for s in train.samples) == ["good1", "good2", "good3"] and not test.samples
    reasons = {Path(p).stem: r for p, r in train.skipped}
    assert set(reasons) == {"size", "empty", "range", "broken", "nomask"}
    assert "20" in reasons["size"] and "its photo's size" in reasons["size"]
    assert "no objects" in reasons["empty"]
    assert "object id 3 is out of range" in reasons["range"]
    assert "unreadable photo" in reasons["broken"]
    assert "no mask" in reasons["nomask"]
    assert all("\n" not in r for r in reasons.values())


def test_strict_stops_at_the_first_bad_sample_with_one_line(bad_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(DataError, match="`strict`"):
        load_pennfudan(bad_tree, 40, strict=True)
    code = main(["train", "--task", "detection", "--data-dir", str(bad_tree), "--strict", "--out", str(tmp_path / "run"),
                 "--no-progress", "--no-tensorboard"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and err.startswith("resnet train: error:") and "nomask" in err
    code = main(["train", "--task", "segmentation", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "not a Penn-Fudan folder" in err and err.count("\n") == 0


def _options(data: Path, out: Path, task: str, **kw) -> TrainOptions:  # noqa: ANN003
    sets = {"image_size": 64, "batch_size": 4, "test_images": 1, "holdout": 0, "log_every": 1, "warmup": 0,
            "hflip": "false", "lr": 0.01, **kw.pop("sets", {})}
    return TrainOptions(task=task, model="resnet18", data="pennfudan", data_dir=str(data), out=out, progress=False,
                        tensorboard=False, overrides={k: str(v) for k, v in sets.items()}, **{"limit": 5, **kw})


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "train"]


def test_detector_trains_and_its_loss_falls(pennfudan_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "det"
    summary = train_dense(_options(pennfudan_dir, out, "detection", sets={"iterations": 8, "proposals": 64, "rois_per_image": 32}))
    losses = _losses(out)
    assert summary["finished"] and len(losses) == 8 and summary["train_images"] == 4
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses
    assert {"box_map", "box_map50", "mask_map"} <= set(summary["final"])
    for name in ("recipe.json", "metrics.jsonl", "last.safetensors", "last.state.pt", "summary.json", "curves.png", "results.md"):
        assert (out / name).is_file(), name
    png = tmp_path / "drawn"
    code = main(["predict", str(out), str(pennfudan_dir / "PNGImages" / "FudanPed00001.png"), "--out", str(png),
                 "--threshold", "0"])
    assert code == 0
    with Image.open(png / "FudanPed00001.png") as img:
        assert img.format == "PNG" and min(img.size) == 64


def test_segmenter_trains_resumes_exactly_and_evaluates(pennfudan_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from safetensors.torch import load_file

    whole, split = tmp_path / "whole", tmp_path / "split"
    summary = train_dense(_options(pennfudan_dir, whole, "segmentation", sets={"iterations": 8, "hflip": "true"}))
    losses = _losses(whole)
    assert summary["finished"] and sum(losses[-2:]) < 0.8 * sum(losses[:2]), losses
    assert train_dense(_options(pennfudan_dir, split, "segmentation", sets={"iterations": 8, "hflip": "true"},
                                stop_after=3))["stop_reason"]
    assert train_dense(_options(pennfudan_dir, split, "segmentation", sets={"iterations": 8, "hflip": "true"},
                                resume=True))["finished"]
    a, b = load_file(whole / "last.safetensors"), load_file(split / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert main(["eval", str(whole), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "segmentation" and result["photos"] == 1
    assert result["metrics"]["miou"] == pytest.approx(summary["final"]["miou"])
    assert main(["predict", str(whole), str(tmp_path / "missing.png"), "--out", str(tmp_path / "p")]) == 1
    assert "missing.png" in capsys.readouterr().err


def test_backbone_degradation_experiment_writes_its_results(pennfudan_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    code = main(["experiment", "backbone-degradation", "--data-dir", str(pennfudan_dir), "--depths", "18", "--out", str(out),
                 "--set", "iterations=2", "--set", "image_size=48", "--set", "test_images=2", "--set", "log_every=1"])
    assert code == 0
    table = (out / "results.md").read_text()
    assert "| segmentation | plain18 | 2 |" in table and "| segmentation | resnet18 | 2 |" in table
    assert (out / "curves.png").stat().st_size > 0 and (out / "predictions.png").stat().st_size > 0


def test_classification_weights_start_the_backbone(pennfudan_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from resnet import create_model
    from resnet.models.interop import save_weights

    classifier = create_model("resnet18", num_classes=10)
    save_weights(classifier, tmp_path / "r18.safetensors")
    out = tmp_path / "run"
    summary = train_dense(_options(pennfudan_dir, out, "segmentation", sets={"iterations": 1},
                                   init=str(tmp_path / "r18.safetensors")))
    assert summary["init"] == str(tmp_path / "r18.safetensors")
    weights = load_file(out / "last.safetensors")
    # trainable_layers=3: layer1 and the stem stay as the classifier left them; layer4 trained
    torch.testing.assert_close(weights["backbone.layer1.0.conv1.weight"], classifier.layer1[0].conv1.weight.detach())
    torch.testing.assert_close(weights["backbone.bn1.running_mean"], classifier.bn1.running_mean)
    assert not torch.equal(weights["backbone.layer4.0.conv1.weight"], classifier.layer4[0].conv1.weight.detach())


def test_dense_runs_have_the_time_limit_ema_and_exact_resume_of_every_run(pennfudan_dir: Path, tmp_path: Path) -> None:
    """Issue 29: one trainer. Turning on EMA and a time limit for a dense run needs no dense code: it stops at the
    limit with a checkpoint, and the resumed run ends bit for bit where an uninterrupted one does."""
    from safetensors.torch import load_file

    from resnet.train.checkpoint import load_state

    sets = {"iterations": 5, "hflip": "true", "ema_decay": 0.5}
    whole = train_dense(_options(pennfudan_dir, tmp_path / "whole", "segmentation", sets=sets))
    split = tmp_path / "split"
    stopped = train_dense(_options(pennfudan_dir, split, "segmentation", sets=sets, time_limit=0.0))
    assert stopped["steps"] == 1 and stopped["stop_reason"].startswith("time limit of 0 s reached at iteration 1")
    state = load_state(split)
    assert state is not None and state["step"] == 1 and state["ema"] is not None
    resumed = train_dense(_options(pennfudan_dir, split, "segmentation", sets=sets, resume=True))
    assert resumed["finished"] and resumed["weights_digest"] == whole["weights_digest"]
    # the saved weights are the average: they differ from the network the optimizer moved
    averaged, raw = load_file(split / "last.safetensors"), load_state(split)["model"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged if averaged[k].is_floating_point())


def test_an_interrupted_dense_run_stops_as_every_run_does(pennfudan_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The same words and the same exception as a classification run (issue 29), raised by the trainer itself."""
    import os
    import signal

    import resnet.train.dense as dense_module
    from resnet.train.checkpoint import load_state
    from resnet.train.stopping import TrainingInterrupted

    real = dense_module.batch_samples

    def interrupting(data, recipe, seed, step):  # noqa: ANN001, ANN202 - Ctrl-C while the second batch is drawn
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return real(data, recipe, seed, step)

    monkeypatch.setattr(dense_module, "batch_samples", interrupting)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match=r"^interrupted by SIGINT at iteration 2; checkpoint written to"):
        train_dense(_options(pennfudan_dir, out, "segmentation", sets={"iterations": 6}))
    state = load_state(out)
    assert state is not None and state["step"] == 2


def test_dense_runs_select_on_held_out_training_photos_and_score_test_once(pennfudan_dir: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    """Issue 34, item 1: the best checkpoint is chosen on photos held out of the training photos; the test photos
    are scored at the end only, and ``resnet eval RUN`` scores the chosen checkpoint on them."""
    from resnet.models.interop import read_state_dict

    out = tmp_path / "run"
    sets = {"iterations": 4, "holdout": 1, "eval_every": 1, "eval_share": 0}
    summary = train_dense(_options(pennfudan_dir, out, "segmentation", sets=sets, limit=6))
    assert (summary["train_images"], summary["holdout_images"], summary["test_images"]) == (4, 1, 1)
    evals = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [1, 2, 3, 4]
    assert all(r.get("holdout_miou") is not None for r in evals)
    assert [r.get("miou") is not None for r in evals] == [False, False, False, True]  # test: once, at the end
    best = summary["best"]
    assert best["holdout_miou"] == max(r["holdout_miou"] for r in evals) and "miou" not in {k for k in best if best["step"] != 4}
    _, meta = read_state_dict(out / "best.safetensors")
    assert meta["step"] == best["step"] and meta["holdout_miou"] == pytest.approx(best["holdout_miou"])
    assert "best hold-out mean IoU" in (out / "results.md").read_text()
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["photos"] == 1


def test_the_hold_out_is_a_fixed_part_of_the_training_photos() -> None:
    from resnet.data.pennfudan import DenseData, DenseSample
    from resnet.errors import UsageError
    from resnet.train.dense import hold_out

    samples = [DenseSample(f"p{i}", torch.zeros(3, 4, 4), torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64),
                           torch.zeros(0, 4, 4, dtype=torch.uint8)) for i in range(10)]
    train, held = hold_out(DenseData(samples, [("x.png", "unreadable")]), 3)
    assert [s.name for s in held.samples] == ["p0", "p4", "p9"]
    assert sorted(s.name for s in train.samples + held.samples) == sorted(s.name for s in samples)
    assert train.skipped == [("x.png", "unreadable")] and not held.skipped
    with pytest.raises(UsageError, match="holdout=10 leaves no training photos out of 10"):
        hold_out(DenseData(samples), 10)


def test_the_hold_out_scores_boxes_only_and_leaves_the_mask_branch_in_place() -> None:
    """Issue 34, item 8: selection by box mAP skips the mask branch, most of a Mask R-CNN evaluation's cost."""
    from resnet.models.dense import create_dense_model
    from resnet.train.dense import boxes_only

    torch.manual_seed(0)
    model = create_dense_model("maskrcnn", "resnet18", 2, min_size=64, max_size=96, box_score_thresh=0.0).eval()
    head = model.roi_heads.mask_head
    image = [torch.rand(3, 64, 80)]
    with torch.no_grad(), boxes_only(model):
        assert "masks" not in model(image)[0]
    assert model.roi_heads.mask_head is head
    with torch.no_grad():
        assert "masks" in model(image)[0]
