"""Named pretrained weights: registry facts vs torchvision/timm, and every download failure mode on loopback."""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import pytest
import torch

import resnet
from resnet.cli import main
from resnet.errors import CheckpointError, UsageError
from resnet.weights import (
    DownloadError, OfflineError, UnknownWeightsError, all_entries, cache_path, ensure, entries_for, find,
    import_file, load_entry,
)
from resnet.weights import registry as registry_module
from resnet.utils.download import fetch

from weights_helpers import FAST, Files, entry_for, isolated_home, network_answers, serve, state_bytes, write

@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolated_home(tmp_path, monkeypatch)


@pytest.fixture()
def server():
    files = Files()
    srv, base = serve(files)
    yield files, base
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def tiny() -> tuple[torch.nn.Module, bytes]:
    torch.manual_seed(1)
    model = resnet.create_model("resnet8").eval()
    return model, state_bytes(model)


# -- registry facts come from the libraries ---------------------------------------------------------
def test_torchvision_facts_match_get_model_weights() -> None:
    from torchvision.models import get_model_weights

    for name in ("resnet18", "resnet50", "resnext101_64x4d", "wide_resnet101_2"):
        ours = [e for e in entries_for(name) if e.publisher == "torchvision"]
        theirs = list(get_model_weights(name))
        assert len(ours) == len(theirs) > 0
        for e, w in zip(ours, theirs):
            t = w.transforms()
            assert e.url == w.url and w.url.endswith(e.filename) and e.sha256_prefix in e.filename
            assert e.top1 == w.meta["_metrics"]["ImageNet-1K"]["acc@1"] and e.top5 == w.meta["_metrics"]["ImageNet-1K"]["acc@5"]
            assert (e.preprocess.resize, e.preprocess.crop) == (t.resize_size[0], t.crop_size[0])
            assert e.preprocess.interpolation == t.interpolation.value
            assert e.preprocess.mean == tuple(t.mean) and e.file_size_mb == w.meta["_file_size"]
    v2 = find("resnet50", "tv_in1k_v2")
    assert find("resnet50").name == "resnet50:tv_in1k_v2"  # torchvision's DEFAULT is the recommendation
    assert (v2.preprocess.resize, v2.preprocess.crop) == (232, 224)
    assert (find("resnet50", "tv_in1k_v1").preprocess.resize, find("resnet50", "tv_in1k_v1").preprocess.crop) == (256, 224)


def test_timm_facts_match_pretrained_cfg() -> None:
    timm = pytest.importorskip("timm")
    from timm.models import get_pretrained_cfg

    for name in ("resnet50", "resnext50_32x4d", "wide_resnet50_2"):
        ours = {e.tag: e for e in entries_for(name) if e.publisher == "timm"}
        theirs = timm.list_pretrained(f"{name}.*")
        assert sorted(ours) == sorted(f"timm:{t.split('.', 1)[1]}" for t in theirs)
        for full in theirs:
            cfg = get_pretrained_cfg(full).to_dict()
            e = ours["timm:" + full.split(".", 1)[1]]
            size = cfg["input_size"][-1]
            assert e.hf_hub_id == cfg["hf_hub_id"] and e.license == cfg.get("license")
            assert e.preprocess.crop == size and e.preprocess.resize == math.floor(size / cfg["crop_pct"])
            assert e.preprocess.interpolation == cfg["interpolation"] and e.preprocess.mean == tuple(cfg["mean"])
    assert find("resnet50", "a1_in1k").tag == "timm:a1_in1k"  # an unprefixed tag no other source uses


def test_every_known_network_gets_its_weights_and_akamaster_facts() -> None:
    from resnet.reference import AKAMASTER_REPORTED_ERR

    names = {e.model for e in all_entries()}
    assert {"resnet18", "resnet152", "resnext101_32x8d", "wide_resnet50_2", "resnet20", "resnet1202"} <= names
    assert not any(n.startswith("plain") for n in names)
    for depth, err in AKAMASTER_REPORTED_ERR.items():
        e = find(f"resnet{depth}")
        assert e.publisher == "akamaster" and e.top1 == pytest.approx(100 - err) and e.sha256_prefix in e.filename
        assert e.preprocess.input_size == 32 and e.classes()[3] == "cat"


def test_unknown_tag_names_the_closest_and_unknown_model_is_refused() -> None:
    with pytest.raises(UnknownWeightsError, match="closest: resnet50:tv_in1k_v2"):
        find("resnet50", "tv_in1k_v3")
    with pytest.raises(UnknownWeightsError, match="no pretrained weights are published for plain20"):
        find("plain20")
    assert main(["weights", "path", "resnet50:tv_in1k_v9"]) == 2


def test_akamaster_reference_file_matches_its_published_hash(akamaster_dir: Path) -> None:
    entry = find("resnet20")
    data = (akamaster_dir / entry.filename).read_bytes()
    assert hashlib.sha256(data).hexdigest().startswith(entry.sha256_prefix)


# -- downloads ---------------------------------------------------------------------------------------
def test_good_download_is_checked_cached_and_loaded(server, tiny) -> None:
    files, base = server
    model, data = tiny
    entry = entry_for(data, url=base)
    files.blobs[f"/{entry.filename}"] = data
    path = ensure(entry, FAST)
    assert path == cache_path(entry) and path.read_bytes() == data
    assert not list(path.parent.glob("*.part")) and not list(path.parent.glob(".*.tmp"))
    fresh = resnet.create_model("resnet8")
    loaded = load_entry(fresh, entry, FAST)
    assert not loaded.head_replaced and fresh.preprocess == entry.preprocess
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(fresh.eval()(x), model(x))
    ensure(entry, FAST)
    assert len(files.requests) == 1  # cached: no second request


def test_truncated_download_resumes_with_a_range_request(server, tiny) -> None:
    files, base = server
    _, data = tiny
    entry = entry_for(data, url=base)
    files.blobs[f"/{entry.filename}"] = data
    files.truncate_once.add(f"/{entry.filename}")
    path = ensure(entry, FAST)
    assert path.read_bytes() == data
    assert files.requests[0][1] is None and files.requests[1][1] == f"bytes={len(data) // 2}-"


def test_wrong_hash_deletes_the_file_and_says_so(server, tiny) -> None:
    files, base = server
    _, data = tiny
    entry = entry_for(data, url=base)
    files.blobs[f"/{entry.filename}"] = data[:-10] + b"0123456789"
    with pytest.raises(DownloadError, match="it was deleted"):
        ensure(entry, FAST)
    assert not cache_path(entry).exists() and not list(cache_path(entry).parent.glob("*"))


def test_404_is_one_clear_line(server, tiny) -> None:
    _, base = server
    entry = entry_for(tiny[1], url=base)
    with pytest.raises(DownloadError, match=r"HTTP 404 .*not at that address") as err:
        ensure(entry, FAST)
    assert "\n" not in str(err.value)


def test_slow_server_times_out_after_the_retries(server, tiny) -> None:
    files, base = server
    _, data = tiny
    entry = entry_for(data, url=base)
    files.blobs[f"/{entry.filename}"] = data
    files.slow[f"/{entry.filename}"] = 2.0
    with pytest.raises(DownloadError, match=r"after 2 tries \(no data within 0.5 s\)"):
        ensure(entry, FAST)
    assert len(files.requests) == 2


def test_redirect_is_followed(server, tiny) -> None:
    files, base = server
    _, data = tiny
    entry = entry_for(data, url=base)
    files.redirects[f"/{entry.filename}"] = "/real/place.th"
    files.blobs["/real/place.th"] = data
    assert ensure(entry, FAST).read_bytes() == data


class _Boom:
    def __reduce__(self):  # noqa: ANN204 - the payload a hostile file carries
        return (Path.touch, (Path(_Boom.marker),))


def test_crafted_pickle_passes_the_hash_but_is_never_run(server, tmp_path: Path) -> None:
    files, base = server
    _Boom.marker = str(tmp_path / "pwned")
    buffer = io.BytesIO()
    torch.save({"state_dict": {"module.conv1.weight": torch.zeros(1)}, "evil": _Boom()}, buffer)
    data = buffer.getvalue()
    entry = entry_for(data, url=base)
    files.blobs[f"/{entry.filename}"] = data
    with pytest.raises(CheckpointError, match="refused to load"):
        load_entry(resnet.create_model("resnet8"), entry, FAST)
    assert not (tmp_path / "pwned").exists()


def test_offline_is_one_line_naming_url_file_and_import(monkeypatch: pytest.MonkeyPatch, tiny) -> None:
    entry = entry_for(tiny[1], url="http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError) as err:
        ensure(entry, FAST)
    text = str(err.value)
    assert entry.url in text and entry.filename in text and f"import it: `resnet.weights.import_file('{entry.filename}', '{entry.name}')`" in text
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(OfflineError, match="no network"):  # nothing listens on port 9 of the loopback
        fetch(entry.url, cache_path(entry), sha256_prefix=entry.sha256_prefix, policy=FAST)


def test_mirror_serves_the_real_registry_and_create_model_uses_it(server, monkeypatch, akamaster_dir: Path, capsys) -> None:
    files, base = server
    entry = find("resnet20")
    files.blobs[f"/mirror/{entry.filename}"] = (akamaster_dir / entry.filename).read_bytes()
    monkeypatch.setenv("RESNET_WEIGHTS_MIRROR", base + "/mirror")
    assert main(["weights", "download", "resnet20", "--timeout", "5"]) == 0
    assert main(["weights", "path", "resnet20:akamaster_cifar10"]) == 0
    assert capsys.readouterr().out.strip().endswith(entry.filename)
    model = resnet.create_model("resnet20", pretrained=True)
    reference = resnet.create_model("resnet20")
    resnet.load_pretrained(reference, akamaster_dir / entry.filename)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.eval()(x), reference.eval()(x))
    assert model.preprocess.mean == (0.485, 0.456, 0.406)
    head = resnet.create_model("resnet20", pretrained="akamaster_cifar10", num_classes=3)  # fine-tuning: new head
    torch.testing.assert_close(head.conv1.weight, model.conv1.weight)
    assert head.fc.out_features == 3
    assert main(["weights", "verify"]) == 0


def test_import_checks_the_hash_and_the_architecture(tmp_path: Path, monkeypatch, tiny, capsys) -> None:
    model, data = tiny
    entry = entry_for(data)
    monkeypatch.setattr(registry_module, "entries_for", lambda name: (entry,) if name == "resnet8" else ())
    src = write(tmp_path / entry.filename, data)
    assert main(["weights", "import", str(src), "--as", "resnet8:test"]) == 0
    assert cache_path(entry).read_bytes() == data
    wrong = write(tmp_path / "other.th", data + b"x")
    assert main(["weights", "import", str(wrong), "--as", "resnet8:test"]) == 1
    assert "other.th does not have the sha256" in capsys.readouterr().err
    other = state_bytes(resnet.create_model("resnet14"))
    entry14 = entry_for(other, model="resnet8")  # right hash, wrong network
    with pytest.raises(CheckpointError, match="does not fit resnet8"):
        import_file(write(tmp_path / entry14.filename, other), entry14)
    cache_path(entry).write_bytes(data[:-1] + b"!")
    assert main(["weights", "verify", "resnet8:test"]) == 1
    assert f"{cache_path(entry)} does not have the sha256 recorded" in capsys.readouterr().err


def test_hub_files_come_through_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError
    from safetensors.torch import save_file

    entry = find("resnet18", "timm:a1_in1k")
    source = resnet.create_model("resnet18")
    calls = []
    network_answers(monkeypatch)  # the hub's answers are faked below

    def fake_download(repo_id: str, filename: str, local_dir: Path, **kw: object) -> str:
        calls.append((repo_id, filename))
        out = Path(local_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(out))
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "get_paths_info", lambda *a, **kw: [])  # the hub's hashes: tests/test_weights_hashes.py
    model = resnet.create_model("resnet18", pretrained="timm:a1_in1k")
    assert calls == [("timm/resnet18.a1_in1k", "model.safetensors")]
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight)
    assert model.preprocess.interpolation == "bicubic" and model.preprocess.resize == 235

    def offline(*a: object, **kw: object) -> str:
        raise LocalEntryNotFoundError("offline mode is enabled")

    cache_path(entry).unlink()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(OfflineError, match=r"import it: `resnet\.weights\.import_file\('model\.safetensors', 'resnet18:timm:a1_in1k'\)`"):
        resnet.create_model("resnet18", pretrained="timm:a1_in1k")


def test_cli_list_and_named_source_for_predict(monkeypatch, tmp_path: Path, tiny, capsys) -> None:
    import json

    assert main(["weights", "list", "resnet56", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["resnet56:akamaster_cifar10"] and rows[0]["top1"] == pytest.approx(93.39)
    model, data = tiny
    entry = entry_for(data)
    monkeypatch.setattr(registry_module, "entries_for", lambda name: (entry,) if name == "resnet8" else ())
    write(cache_path(entry), data)
    image = tmp_path / "img.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(image)
    assert main(["predict", "resnet8:test", str(image), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "airplane" in json.dumps(out) or "truck" in json.dumps(out)  # CIFAR-10 names travel with the weights
    with pytest.raises(UsageError):
        find("resnet8", "nope")


def test_torch_home_copy_is_used_and_a_path_works_as_pretrained(tmp_path: Path, tiny) -> None:
    model, data = tiny
    entry = entry_for(data, publisher="torchvision")  # nothing listens at its URL: it must not be fetched
    copy = write(tmp_path / "torch" / "hub" / "checkpoints" / entry.filename, data)
    assert ensure(entry, FAST) == copy and not cache_path(entry).exists()
    from_file = resnet.create_model("resnet8", pretrained=str(copy))
    torch.testing.assert_close(from_file.conv1.weight, model.conv1.weight)
    with pytest.raises(UnknownWeightsError, match="no pretrained weights are published for plain20"):
        resnet.create_model("plain20", pretrained=True)


def test_named_weights_resolve_to_their_cached_file_in_the_weights_layer(monkeypatch, tmp_path: Path, tiny) -> None:
    from resnet.weights import resolve_pretrained

    model, data = tiny
    entry = entry_for(data)
    monkeypatch.setattr(registry_module, "entries_for", lambda name: (entry,) if name == "resnet8" else ())
    write(cache_path(entry), data)
    assert resolve_pretrained("resnet8:test") == cache_path(entry)  # what resnet.backbone / train --init load
    assert resolve_pretrained(cache_path(entry)) == cache_path(entry)
    with pytest.raises(CheckpointError, match="not a file, run folder or NAME:TAG"):
        resolve_pretrained(tmp_path / "missing.safetensors")
    # the models layer builds architectures only: pretrained weights come through resnet.create_model
    assert resnet.create_model is resnet.weights.create_model and resnet.backbone is resnet.weights.backbone
    with pytest.raises(UsageError, match="resnet.create_model"):
        resnet.models.create_model("resnet8", pretrained="test")
    built = resnet.create_model("resnet8", pretrained="test")
    assert built.model_name == "resnet8"
    torch.testing.assert_close(built.conv1.weight, model.conv1.weight)
