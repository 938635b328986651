"""Bounded loading: a zip-bomb checkpoint and a safetensors file that declares more than it holds are refused
before anything is allocated, in a process whose memory is capped (``resource.setrlimit``) a few hundred MB above
what it uses before the load."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from resnet.errors import CheckpointError
from resnet.models.interop import architecture_bytes, check_zip_sizes, read_state_dict

SRC = str(Path(__file__).resolve().parents[1] / "src")
BLOCK = 16 << 20
CAP_MB = 300  # memory the load may take above the process's size before it

# Loads argv[1] with the address space capped CAP_MB above its size after the imports; argv[2] == "unguarded" lifts
# the budget (to show the cap bites on the bomb once it is inflated). Exit 3: refused with a one-line CheckpointError.
LOADER = textwrap.dedent("""
    import resource, sys
    import torch
    from resnet.errors import CheckpointError
    from resnet.models import interop
    if sys.argv[2] == "unguarded":
        interop.ZIP_SLACK = 1 << 45
    vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
    cap = vm + int(sys.argv[3]) * (1 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        interop.read_state_dict(sys.argv[1])
    except CheckpointError as err:
        print(err)
        sys.exit(3)
    except MemoryError:
        print("MemoryError")
        sys.exit(4)
    print("loaded")
""")


def _zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> None:
    """A zip of (name, stored bytes, method, declared size, crc) members, written by hand so that a deflate stream
    made by repeating one block (see :func:`zip_bomb`) goes in as is."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, size, crc in members:
        offset, raw = out.tell(), name.encode()
        out.write(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0))
        out.write(raw + data)
        central.write(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, method, 0, 0x21, crc, len(data), size,
                                  len(raw), 0, 0, 0, 0, 0, offset))
        central.write(raw)
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central.getvalue()), start, 0))
    path.write_bytes(out.getvalue())


def zip_bomb(path: Path, inflated: int) -> Path:
    """A torch.save checkpoint whose one tensor record is ``inflated`` bytes of zeros deflated to a few MB."""
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(4)}, buffer)
    import zipfile

    real = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(bytes(BLOCK)) + deflate.flush(zlib.Z_FULL_FLUSH)  # a full flush: every block the same
    stream = block * (inflated // BLOCK) + deflate.flush(zlib.Z_FINISH)
    members = []
    for info in real.infolist():
        if info.filename.endswith("/data/0"):
            members.append((info.filename, stream, 8, inflated, 0))  # the CRC is never reached
        else:
            data = real.read(info.filename)
            members.append((info.filename, data, 0, len(data), zlib.crc32(data)))
    _zip(path, members)
    return path


def _load_capped(path: Path, mode: str = "guarded") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LOADER, str(path), mode, str(CAP_MB)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"})


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmSize from /proc")
def test_a_zip_bomb_is_refused_in_one_line_before_inflating_under_a_memory_cap(tmp_path: Path) -> None:
    bomb = zip_bomb(tmp_path / "resnet20-4118986f.th", 2 << 30)  # 2 GiB of zeros
    assert bomb.stat().st_size < 8 << 20
    result = _load_capped(bomb)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1, result.stdout + result.stderr
    assert f"refused to load {bomb}: its zip members declare 2,147 MB for a" in lines[0]
    assert "decompression bomb" in lines[0] and "nothing was inflated" in lines[0]
    # The cap is real: without the budget the same load runs into it while inflating.
    unguarded = _load_capped(bomb, "unguarded")
    assert unguarded.returncode in (3, 4) and "decompression bomb" not in unguarded.stdout, unguarded.stdout
    assert "loaded" not in unguarded.stdout


def test_the_budget_grows_with_the_file_and_the_network(tmp_path: Path) -> None:
    assert architecture_bytes("resnet50") > 16 * 25_000_000 and architecture_bytes(None) == 0
    assert architecture_bytes("no-such-net") == 0
    bomb = zip_bomb(tmp_path / "bomb.pth", 64 << 20)  # 64 MiB: over the budget of a small file, under resnet50's
    with pytest.raises(CheckpointError, match=r"over the budget of \d+ MB \(twice the file\)"):
        check_zip_sizes(bomb)
    check_zip_sizes(bomb, "resnet50")
    with pytest.raises(CheckpointError, match="for resnet20"):
        check_zip_sizes(bomb, "resnet20")
    legit = tmp_path / "resnet20.pth"  # an ordinary checkpoint is well within its budget
    from resnet.models import create_model

    torch.save(create_model("resnet20").state_dict(), legit)
    check_zip_sizes(legit)
    assert len(read_state_dict(legit)[0]) > 10


def test_a_training_state_bomb_is_refused_too(tmp_path: Path) -> None:
    from resnet.train.checkpoint import STATE_FILE, load_state

    zip_bomb(tmp_path / STATE_FILE, 256 << 20)
    with pytest.raises(CheckpointError, match="decompression bomb"):
        load_state(tmp_path)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmSize from /proc")
def test_safetensors_sizes_are_checked_against_the_file_before_allocating(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_file({"weight": torch.zeros(4)}, str(good))
    header_len = int.from_bytes(good.read_bytes()[:8], "little")
    header = json.loads(good.read_bytes()[8:8 + header_len])
    huge = 1 << 38  # 256 Gi floats: 1 TiB declared by a file of a few hundred bytes
    header["weight"] = {"dtype": "F32", "shape": [huge], "data_offsets": [0, 4 * huge]}
    raw = json.dumps(header).encode()
    lying = tmp_path / "lying.safetensors"
    lying.write_bytes(len(raw).to_bytes(8, "little") + raw + bytes(16))
    result = _load_capped(lying)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1, result.stdout + result.stderr
    assert f"cannot read safetensors file {lying}" in lines[0]
