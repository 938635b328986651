"""ResNet-1202 runs here, and gradient checkpointing lowers its peak memory (measured in fresh processes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, resource, sys, torch, resnet

def peak_rss_kb():
    # Linux keeps ru_maxrss across fork + exec, so in a child of a big process (the whole test suite)
    # it starts at the parent's size and never moves; VmHWM belongs to this process's own memory.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

torch.manual_seed(0)
torch.set_num_threads(1)  # 1,200 layers of tiny convolutions: a second thread mostly waits (and burns CPU doing so)
model = resnet.create_model("resnet1202")
model.set_grad_checkpointing(sys.argv[1] == "1")
x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
base = peak_rss_kb()
loss = torch.nn.functional.cross_entropy(model(x), y)
loss.backward()
peak = peak_rss_kb()
grad_ok = all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
print(json.dumps({"loss": loss.item(), "base_kb": base, "peak_kb": peak, "grad_ok": grad_ok}))
"""


def _run(checkpointing: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, "1" if checkpointing else "0"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_resnet1202_forward_backward_and_checkpointing_saves_memory() -> None:
    plain = _run(False)
    ckpt = _run(True)
    assert plain["grad_ok"] and ckpt["grad_ok"]
    assert abs(plain["loss"] - ckpt["loss"]) < 1e-4
    used_plain = plain["peak_kb"] - plain["base_kb"]
    used_ckpt = ckpt["peak_kb"] - ckpt["base_kb"]
    print(f"resnet1202 bs8 activations+grads: {used_plain / 1024:.0f} MiB without, {used_ckpt / 1024:.0f} MiB with checkpointing")
    assert used_ckpt < 0.7 * used_plain
