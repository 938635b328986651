"""`resnet serve` under attack, on loopback only, each flood bounded in count and time: while it runs, a probe
client sends a normal predict request and a /healthz every 50 ms; afterwards the server must still answer.
Prints the figures and PASS/MISS against issue 32's targets (probe p99 <= 1 s, /healthz max <= 100 ms, 0 5xx,
RSS back within 10 % of the baseline, log under 1 MB).

    PYTHONPATH=src python benchmarks/serve_abuse.py --connections 2000 --seconds 10

Floods: `idle` (N connections each sending a partial request head, held), `pixels` (4 clients posting PNGs of a
few KB that decode to 7000x7000: over the default budget), `allowed` (the same at 4500x4500: under it), `corrupt` (JPEGs with corrupt data: answered, marked damaged).
The server runs in its own process (`resnet serve`, ResNet-8 with random weights, its defaults otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _photo() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _corrupt() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((200, 300, 3)) * 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    data, mutate = bytearray(buf.getvalue()), np.random.default_rng(0)
    for _ in range(3):
        data[int(mutate.integers(600, len(data) - 10))] = int(mutate.integers(0, 256))
    return bytes(data)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _probe(url: str, stop: asyncio.Event, photo: bytes) -> dict[str, list]:
    out: dict[str, list] = {"predict_s": [], "health_s": [], "statuses": []}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not stop.is_set():
            for path, key in (("/v1/predict", "predict_s"), ("/healthz", "health_s")):
                start = time.perf_counter()
                try:
                    r = await (client.post(path, content=photo) if key == "predict_s" else client.get(path))
                    out["statuses"].append(r.status_code)
                except httpx.HTTPError as err:
                    out["statuses"].append(type(err).__name__)
                out[key].append(time.perf_counter() - start)
            await asyncio.sleep(0.05)
    return out


async def _idle_flood(host: str, port: int, count: int, seconds: float) -> int:
    writers = []
    for _ in range(count):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n")
            writers.append(writer)
        except (OSError, asyncio.TimeoutError):
            pass
    await asyncio.sleep(seconds)
    for w in writers:
        w.close()
    return len(writers)


async def _post_flood(url: str, body: bytes, clients: int, seconds: float) -> list:
    statuses: list = []
    end = time.monotonic() + seconds

    async def one() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while time.monotonic() < end:
                try:
                    statuses.append((await client.post("/v1/predict", content=body)).status_code)
                except httpx.HTTPError as err:
                    statuses.append(type(err).__name__)

    await asyncio.gather(*(one() for _ in range(clients)))
    return statuses


async def _run_flood(name: str, url: str, args: argparse.Namespace) -> tuple[dict, list]:
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(url, stop, _photo()))
    host, port = url.removeprefix("http://").split(":")
    if name == "idle":
        flood: list = [await _idle_flood(host, int(port), args.connections, args.seconds)]
    elif name == "pixels":
        flood = await _post_flood(url, _png((7000, 7000), "1"), 4, args.seconds)
    elif name == "allowed":  # large but under the default pixel budget: decoded, slowing only the flooders
        flood = await _post_flood(url, _png((4500, 4500), "1"), 4, args.seconds)
    else:
        flood = await _post_flood(url, _corrupt(), 4, args.seconds)
    stop.set()
    return await probe, flood


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=2000, help="idle flood: connections held (default 2000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="each flood's length (default 10)")
    ap.add_argument("--floods", nargs="+", default=["idle", "pixels", "allowed", "corrupt"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    import resnet
    from resnet.models.interop import save_weights

    ckpt = tmp / "r8.safetensors"
    save_weights(resnet.create_model("resnet8"), ckpt, {"classes": [str(i) for i in range(10)], "dataset": "abuse"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "resnet", "serve", str(ckpt), "--port", str(port)], stdout=log, stderr=log,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")})
    url = f"http://127.0.0.1:{port}"
    rows, ok = [], True
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        for _ in range(20):  # warm: the baseline RSS after some normal traffic
            httpx.post(url + "/v1/predict", content=_photo(), timeout=30)
        for name in args.floods:
            base_rss, log_before = _rss_mb(server.pid), (tmp / "server.log").stat().st_size
            probe, flood = asyncio.run(_run_flood(name, url, args))
            time.sleep(2)
            after = _rss_mb(server.pid)
            alive = httpx.get(url + "/healthz", timeout=5).status_code == 200
            p99 = statistics.quantiles(probe["predict_s"], n=100)[98] if len(probe["predict_s"]) > 1 else float("nan")
            answers = [] if name == "idle" else flood
            fives = sum(1 for s in probe["statuses"] + answers if isinstance(s, int) and s >= 500)
            row = {"flood": name, "probe_requests": len(probe["predict_s"]), "predict_p99_s": round(p99, 3),
                   "healthz_max_s": round(max(probe["health_s"] or [0]), 3), "probe_5xx_or_errors": sum(
                       1 for s in probe["statuses"] if not isinstance(s, int) or s >= 500),
                   "flood_5xx": fives, "flood_answers": {str(k): (flood.count(k)) for k in set(flood)} if name != "idle" else {"held": flood[0]},
                   "rss_before_mb": round(base_rss), "rss_after_mb": round(after),
                   "log_bytes": (tmp / "server.log").stat().st_size - log_before, "alive_after": alive}
            checks = {"predict p99 <= 1 s": p99 <= 1.0, "healthz <= 100 ms": row["healthz_max_s"] <= 0.1, "0 5xx": fives == 0
                      and row["probe_5xx_or_errors"] == 0, "RSS within 10 %": after <= 1.1 * base_rss, "log < 1 MB": row["log_bytes"] < 1 << 20,
                      "still answers": alive}
            row["verdict"] = {k: "PASS" if v else "MISS" for k, v in checks.items()}
            ok &= all(checks.values())
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("PASS" if ok else "MISS")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
