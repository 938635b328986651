"""Full-strength hashes: the hub's full sha256 is checked; where only a prefix is published, the full sha256 recorded
at the first download or import is, from then on. A file replaced by one with the same prefix is refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import resnet
from resnet.cli import main
from resnet.errors import CheckpointError
from resnet.weights import DownloadError, cache_path, ensure, find, verify
from resnet.weights import registry as registry_module
from resnet.weights.manifest import read_manifest
from resnet.weights.store import weights_dir

from weights_helpers import FAST, Files, entry_for, isolated_home, serve, state_bytes, write

@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolated_home(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def tiny() -> bytes:
    torch.manual_seed(1)
    return state_bytes(resnet.create_model("resnet8"))


def same_prefix_forgery(data: bytes, digits: int) -> bytes:
    """``data`` with one weight byte changed and 8 bytes appended so that its sha256 starts with the same ``digits``
    hex digits as ``data``'s: a tampered file that a prefix check passes (a short prefix keeps the search short; the
    check under test does not depend on the prefix's length)."""
    prefix = hashlib.sha256(data).hexdigest()[:digits]
    middle = len(data) // 2
    body = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
    base = hashlib.sha256(body)
    for n in range(1 << (4 * digits + 6)):
        h = base.copy()
        suffix = n.to_bytes(8, "little")
        h.update(suffix)
        if h.hexdigest().startswith(prefix):
            return body + suffix
    raise AssertionError("no forgery found")


def _short_prefix_entry(data: bytes, monkeypatch: pytest.MonkeyPatch, digits: int = 4, **kw: object):  # noqa: ANN202
    entry = replace(entry_for(data, **kw), sha256_prefix=hashlib.sha256(data).hexdigest()[:digits])  # type: ignore[arg-type]
    original = registry_module.entries_for
    monkeypatch.setattr(registry_module, "entries_for", lambda name: (entry,) if name == entry.model else original(name))
    return entry


def test_a_replaced_file_with_an_intact_prefix_is_refused_by_path_verify_and_loading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    server_files = Files()
    srv, base = serve(server_files)
    try:
        entry = _short_prefix_entry(tiny, monkeypatch, url=base)
        server_files.blobs[f"/{entry.filename}"] = tiny
        path = ensure(entry, FAST)  # the first download records the full sha256
    finally:
        srv.shutdown()
        srv.server_close()
    record = read_manifest(weights_dir())[entry.name]
    assert record["sha256"] == hashlib.sha256(tiny).hexdigest() and record["basis"] == "recorded"
    assert main(["weights", "path", entry.name]) == 0 and capsys.readouterr().out.strip() == str(path)

    forged = same_prefix_forgery(tiny, 4)
    assert hashlib.sha256(forged).hexdigest().startswith(entry.sha256_prefix) and forged != tiny
    path.write_bytes(forged)
    for command in (["weights", "path", entry.name], ["weights", "verify", entry.name]):
        assert main(command) == 1, command
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0], captured
        assert "does not have the sha256 recorded when it was first fetched" in lines[0] and str(path) not in captured.out
    with pytest.raises(CheckpointError, match="recorded when it was first fetched"):
        resnet.create_model("resnet8", num_classes=10, pretrained="test")
    tmp = write(tmp_path / entry.filename, forged)  # nor can it come back in through import
    assert main(["weights", "import", str(tmp), "--as", entry.name]) == 1
    assert "recorded when it was first fetched" in capsys.readouterr().err


def test_a_corrupt_file_makes_weights_path_fail_in_one_line(monkeypatch: pytest.MonkeyPatch, tiny: bytes,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    entry = _short_prefix_entry(tiny, monkeypatch, digits=8)
    path = write(cache_path(entry), tiny[:-1] + b"!")  # never recorded: the published prefix is what it fails
    assert main(["weights", "path", entry.name]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path} does not have the sha256 published for {entry.name}" in err[0]


def test_list_says_what_is_verified_and_a_torch_home_copy_is_recorded_at_first_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    entry = _short_prefix_entry(tiny, monkeypatch, digits=8, publisher="torchvision", model="resnet20")
    copy = write(tmp_path / "torch" / "hub" / "checkpoints" / entry.filename, tiny)
    assert main(["weights", "list", "resnet20:test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["verified"] == "prefix"
    assert ensure(entry, FAST) == copy  # first use: the prefix matches, the full sha256 is recorded
    assert main(["weights", "list", "resnet20:test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["verified"] == "recorded"
    assert main(["weights", "list", "resnet20:test"]) == 0
    assert "sha256 (recorded)" in capsys.readouterr().out
    copy.write_bytes(tiny + b"x")  # any change now fails in full
    with pytest.raises(CheckpointError, match=f"{copy} does not have the sha256 recorded"):
        ensure(entry, FAST)
    assert main(["weights", "list", "resnet50:timm:a1_in1k", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["verified"] == "hub"


def test_hugging_face_files_are_checked_against_the_full_sha256_the_hub_publishes(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import huggingface_hub
    from safetensors.torch import save

    entry = find("resnet18", "timm:a1_in1k")
    blob = save({k: v.contiguous() for k, v in resnet.create_model("resnet18").state_dict().items()})
    published = {"sha": hashlib.sha256(blob).hexdigest()}
    served = {"blob": blob}

    def fake_download(repo_id: str, filename: str, local_dir: Path, **kw: object) -> str:
        out = Path(local_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(served["blob"])
        return str(out)

    def paths_info(self: object, repo_id: str, paths: list[str], **kw: object) -> list[SimpleNamespace]:
        assert repo_id == entry.hf_hub_id and paths == [entry.filename]
        return [SimpleNamespace(path=entry.filename, lfs=SimpleNamespace(sha256=published["sha"], size=len(blob)))]

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "get_paths_info", paths_info)
    path = ensure(entry, FAST)
    assert verify(entry, path) == "published"
    assert read_manifest(weights_dir())[entry.name]["basis"] == "published"

    path.write_bytes(blob[:-1] + b" ")  # tampered in the cache: no prefix to pass, the full hash fails
    assert main(["weights", "verify", entry.name]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not have the sha256 the Hugging Face hub publishes" in err[0] and str(path) in err[0]

    path.unlink()  # a download that is not the published file is deleted
    served["blob"] = blob[:-1] + b" "
    with pytest.raises(DownloadError, match="Hugging Face hub publishes .* so it was deleted"):
        ensure(entry, FAST)
    assert not path.exists()


def test_a_cache_where_the_manifest_cannot_be_written_still_works_on_the_prefix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny: bytes) -> None:
    from resnet.weights import manifest

    def read_only(*a: object, **kw: object) -> None:
        raise PermissionError(13, "Read-only file system")

    entry = _short_prefix_entry(tiny, monkeypatch, digits=8, publisher="torchvision", model="resnet20")
    copy = write(tmp_path / "torch" / "hub" / "checkpoints" / entry.filename, tiny)
    monkeypatch.setattr(manifest, "record", read_only)
    assert ensure(entry, FAST) == copy and verify(entry, copy) == "prefix"
    copy.write_bytes(tiny[:-1] + b"!")
    with pytest.raises(CheckpointError, match="does not have the sha256 published"):
        ensure(entry, FAST)
