"""Load test of ``resnet serve`` on loopback: N concurrent clients (1, 8, 64) for a bounded time each,
against the model's own throughput and latency measured in the same run.

    PYTHONPATH=src nice -n 10 python benchmarks/serve_load.py [SOURCE] [--model resnet50] [--clients 1 8 64] [--seconds 20]

The server is ``resnet serve`` in its own process (the same loading, optimisation and micro-batching as
on the command line); the clients are asyncio tasks in this process on keep-alive connections, each
sending real JPEG photos (raw bytes, one request after the other). Without SOURCE, a random-weight ``--model`` with ImageNet
class names and preprocessing is written to a temporary checkpoint (weights do not change speed).

Reported per client count: requests/s, p50/p95/p99 latency, errors (any non-200), mean batch size and
the share of time the batching thread was running batches (from the server's /metrics), and served
images/s over the model's own batched images/s (a direct ``--max-batch`` call on already decoded images,
in this process, measured in ``--rounds`` rounds alternating with the served load so that both see the
same machine; the server idles meanwhile). Each served stretch starts with ``--lead-in`` seconds of
unmeasured load, then counts the requests that end within it: the direct model is timed running
flat out, so the server is too, not while 64 new connections fill its first batch (with 4 s
stretches and no lead-in that start-up cost about 0.05 of the ratio). The 1-client p50 is compared with a direct batch-1 call: decoding the same
bytes with the same decoder, cropping and running the network once (what a caller does without a
server), and with the network call alone. Targets: >= 0.8 of direct throughput at 64 clients with 0
errors; 1-client p50 within 20 % of the direct batch-1 call. On a shared machine, other jobs slow both
sides; the clients themselves also use CPU time the server cannot have: each row says how much (client CPU
ms per request and the clients' share of the cores, from this process's CPU time during the load, the direct
model idle meanwhile), beside the server process's CPU per request (from /proc, all its threads) and the direct
model's CPU per image. Three ratios follow: raw (served requests/s over direct images/s); with the generator
accounted for (the direct rate scaled to the share of the cores the clients left the server, which is what the
0.8 target is judged on); and by CPU time (direct CPU ms per image over server CPU ms per request: the ratio
both would reach running the same cores flat out, which other jobs on shared cores do not change).

``--server LABEL[@SRC]=FLAGS`` (repeatable) compares servers side by side in one run: each is started with
the extra ``resnet serve`` FLAGS, from the source tree SRC if given (another commit: ``git archive REV src |
tar -x -C DIR``), and every round measures each in turn after the direct model, the first one moving each round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from resnet.data.decode import read_image_bytes  # noqa: E402
from resnet.data.scan import IMAGE_EXTENSIONS  # noqa: E402
from resnet.evaluate.preprocess import network_input  # noqa: E402
from resnet.explain import network_view  # noqa: E402
from resnet.serve import load_member  # noqa: E402

DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "imagenet-samples" / "images"
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", help="checkpoint / run folder (default: a random-weight --model)")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of photos to send (subfolders too: --images .../cifar10/test)")
    p.add_argument("--count", type=int, default=32, help="photos used (cycled)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--seconds", type=float, default=20.0, help="measured time per client count")
    p.add_argument("--warmup", type=float, default=4.0, help="unmeasured load before each client count")
    p.add_argument("--rounds", type=int, default=4, help="alternations of direct and served measurement per row")
    p.add_argument("--lead-in", type=float, default=1.5,
                   help="unmeasured seconds at the start of each served stretch (longer than a request takes at 64 "
                   "clients), so that a stretch measures the server under sustained load, as the direct model is "
                   "measured, not the first batches of 64 new connections; 0 measures from the first request")
    p.add_argument("--mode", default="fp32")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--decode-threads", type=int, default=0, help="the server's --decode-threads")
    p.add_argument("--server", action="append", default=[], metavar="LABEL[@SRC]=FLAGS",
                   help="compare servers side by side: each started with these extra `resnet serve` flags (e.g. "
                   "'h11=--http h11 --loop asyncio'), from the source tree SRC if given (e.g. a `git archive` of "
                   "another commit); every row measures each in turn, alternating with the direct model "
                   "(default: one server, 'serve=')")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args()


def random_checkpoint(model: str, folder: Path) -> str:
    import resnet
    from resnet.data.defaults import default_preprocess
    from resnet.inference.load import imagenet_classes
    from resnet.models.interop import save_weights

    net = resnet.create_model(model, num_classes=1000)
    path = folder / f"{model}-random.safetensors"
    save_weights(net, path, {"classes": imagenet_classes(), "preprocess": default_preprocess(net.spec).as_dict()})
    return str(path)


class Direct:
    """The model without a server, run on worker threads as the server's batcher runs it (on a loaded
    machine, PyTorch's intra-op threads on the main thread measured up to 10x slower at batch 1). Batch 1
    runs on a thread of its own, which never runs a batch, as the server's thread has not when the 1-client
    row runs first."""

    def __init__(self, source: str, mode: str, payloads: list[bytes], max_batch: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(1, thread_name_prefix="direct")
        self.single_pool = ThreadPoolExecutor(1, thread_name_prefix="direct-1")
        self.payloads, self.max_batch = payloads, max_batch
        self.member = self.pool.submit(load_member, source, mode, allow_untrained=True).result()  # random weights: timing only
        pre = self.member.preprocess
        views = [network_view(read_image_bytes(b, pre.channels), pre) for b in payloads]
        self.batch = network_input(torch.stack([views[i % len(views)] for i in range(max_batch)]), pre)
        self.one = network_input(views[0][None], pre)
        self.single_s(3), self.pool.submit(self._logits, self.batch).result()  # warm-up

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.member.scorer().logits(x)

    def _full(self, data: bytes) -> torch.Tensor:
        pre = self.member.preprocess
        return self._logits(network_input(network_view(read_image_bytes(data, pre.channels), pre)[None], pre))

    def batched_images_per_s(self, seconds: float) -> tuple[int, float, float]:
        """Images run, wall seconds and this process's CPU seconds (the clients idle meanwhile: all the model's)."""
        def run() -> tuple[int, float, float]:
            start, cpu, done = time.perf_counter(), time.process_time(), 0
            while time.perf_counter() - start < seconds:
                self._logits(self.batch)
                done += self.max_batch
            return done, time.perf_counter() - start, time.process_time() - cpu

        return self.pool.submit(run).result()

    def single_s(self, repeats: int) -> tuple[list[float], list[float]]:
        """Batch-1 latencies: the network call alone, and decoding + cropping + the call."""
        def run() -> tuple[list[float], list[float]]:
            model, full = [], []
            for i in range(repeats):
                t = time.perf_counter()
                self._logits(self.one)
                model.append(time.perf_counter() - t)
                t = time.perf_counter()
                self._full(self.payloads[i % len(self.payloads)])
                full.append(time.perf_counter() - t)
            return model, full

        return self.single_pool.submit(run).result()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One ``resnet serve`` process under test: ``label``, extra flags, and the source tree it runs from."""

    label: str
    flags: list[str]
    src: Path = ROOT / "src"
    port: int = 0
    proc: subprocess.Popen | None = None

    @classmethod
    def parse(cls, text: str) -> "Server":
        label, _, flags = text.partition("=")
        label, _, src = label.partition("@")
        return cls(label or "serve", shlex.split(flags), Path(src).resolve() if src else ROOT / "src")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds the server process has used so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def start(self, source: str, args: argparse.Namespace) -> None:
        import httpx

        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(self.src) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "RESNET_ALLOW_UNTRAINED": "1"}  # random weights on purpose: only the timing matters
        cmd = [sys.executable, "-m", "resnet", "serve", source, "--port", str(self.port), "--mode", args.mode,
               "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms), "--log-level", "warning",
               "--timeout", "120", "--decode-threads", str(args.decode_threads), *self.flags]
        self.proc = subprocess.Popen(cmd, env=env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server {self.label} exited with status {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"the server {self.label} did not come up within 300 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


def batch_stats(url: str) -> tuple[float, float, float]:
    """Images batched, batches, and seconds the batching thread spent running them, so far."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=30).text
    value = lambda name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))  # noqa: E731
    return value("resnet_batch_size_sum"), value("resnet_batch_size_count"), value("resnet_batch_seconds_sum")


class Connection:
    """A keep-alive HTTP/1.1 connection that posts raw bytes: a few lines of asyncio instead of a full
    client library, so that the load generator takes as little of the shared CPU as it can (like wrk)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, data: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
        self.writer.write(head.encode() + data)
        await self.writer.drain()
        assert self.reader is not None
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))
        await self.reader.readexactly(length)
        if re.search(rb"(?i)connection: *close", header):
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def load(url: str, clients: int, payloads: list[bytes], warmup: float, seconds: float,
               server_cpu: Callable[[], float] = lambda: 0.0) -> dict:
    """``clients`` clients posting for ``warmup + seconds``; measured: the requests that end in the last
    ``seconds`` (the server under sustained load, not filling up), and the CPU both sides spent then."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    begin = time.perf_counter() + warmup
    end = begin + seconds
    marks: dict[str, tuple[float, ...]] = {}

    async def client(i: int) -> None:
        nonlocal errors
        conn, k = Connection(host, int(port)), i
        while time.perf_counter() < end:
            data = payloads[k % len(payloads)]
            k += clients
            t = time.perf_counter()  # not loop.time(): uvloop's clock ticks in milliseconds
            try:
                ok = await conn.post("/v1/predict", data) == 200
            except (OSError, asyncio.IncompleteReadError, ValueError, AttributeError):
                ok = False
                await conn.close()
            t_end = time.perf_counter()
            if begin <= t_end <= end:
                latencies.append(t_end - t)
                errors += not ok
        await conn.close()

    async def mark() -> None:
        await asyncio.sleep(max(0.0, begin - time.perf_counter()))
        marks["start"] = (*await asyncio.to_thread(batch_stats, url), time.process_time(), server_cpu())
        await asyncio.sleep(max(0.0, end - time.perf_counter()))
        marks["end"] = (*await asyncio.to_thread(batch_stats, url), time.process_time(), server_cpu())

    await asyncio.gather(mark(), *(client(i) for i in range(clients)))
    (s0, c0, b0, p0, q0), (s1, c1, b1, p1, q1) = marks["start"], marks["end"]
    return {"latencies": latencies, "errors": errors, "batched": s1 - s0, "batches": c1 - c0, "busy_s": b1 - b0,
            "client_cpu_s": p1 - p0, "server_cpu_s": q1 - q0}


def run_clients(coro: Any) -> Any:
    """The load generator's event loop: uvloop where installed (the clients' CPU time is the server's loss)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def served(server: Server, clients: int, payloads: list[bytes], seconds: float, lead_in: float) -> dict:
    """One stretch of load on ``server``: ``lead_in`` seconds unmeasured (the clients connect and the
    server fills its batches), then ``seconds`` measured, with the CPU it cost the clients and the server
    (the direct model's threads idle meanwhile)."""
    return run_clients(load(server.url, clients, payloads, lead_in, seconds, server.cpu_s))


def measure(servers: list[Server], direct: Direct, clients: int, payloads: list[bytes], args: argparse.Namespace) -> list[dict]:
    """``args.rounds`` rounds of [direct model, then the served load on each server (in turn, first one
    moving each round)], so that all see the same machine. One row per server."""
    for server in servers:
        served(server, clients, payloads, args.warmup, 0.0)  # unmeasured warm-up at this concurrency
    runs: dict[str, list[dict]] = {s.label: [] for s in servers}
    done, spent, cpu, model_s, full_s = 0, 0.0, 0.0, [], []
    for r in range(args.rounds):
        n, t, c = direct.batched_images_per_s(args.seconds / args.rounds / 2)
        done, spent, cpu = done + n, spent + t, cpu + c
        if clients == 1:
            m, f = direct.single_s(8)
            model_s, full_s = model_s + m, full_s + f
        for server in servers[r % len(servers):] + servers[: r % len(servers)]:
            runs[server.label].append(served(server, clients, payloads, args.seconds / args.rounds, args.lead_in))
    direct = {"images_per_s": done / spent, "cpu_ms_per_image": 1000 * cpu / max(done, 1)}
    return [summarize(label, rows, clients, direct, model_s, full_s, args.seconds) for label, rows in runs.items()]


def summarize(label: str, rows: list[dict], clients: int, direct: dict[str, float], model_s: list[float], full_s: list[float],
              seconds: float) -> dict[str, Any]:
    """One row. Besides the raw ratio (served req/s over direct img/s), two that take the load generator out:
    ``ratio_generator_accounted`` compares with the direct rate scaled to the share of the cores the clients
    left (they ran on the same cores, the direct model had them all), and ``cpu_ratio`` is the direct model's
    CPU time per image over the server's CPU time per request: what served / direct would be if both ran the
    cores flat out, whatever else runs on them (wall clocks on shared cores lie; CPU time does not)."""
    lat = sorted(x for r in rows for x in r["latencies"])
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]  # noqa: E731
    rate, requests = len(lat) / seconds, max(len(lat), 1)
    client_share = sum(r["client_cpu_s"] for r in rows) / (seconds * CPUS)
    server_cpu_ms = 1000 * sum(r["server_cpu_s"] for r in rows) / requests
    out = {
        "server": label, "clients": clients, "requests": len(lat), "requests_per_s": rate, "errors": sum(r["errors"] for r in rows),
        "p50_s": q(0.50), "p95_s": q(0.95), "p99_s": q(0.99),
        "mean_batch": sum(r["batched"] for r in rows) / max(sum(r["batches"] for r in rows), 1),
        "direct_images_per_s": direct["images_per_s"], "ratio": rate / direct["images_per_s"],
        "batcher_busy": sum(r["busy_s"] for r in rows) / seconds,
        "client_cpu_ms_per_request": 1000 * sum(r["client_cpu_s"] for r in rows) / requests,
        "client_cpu_share": client_share,
        "ratio_generator_accounted": rate / (direct["images_per_s"] * max(1.0 - client_share, 1e-9)),
        "server_cpu_ms_per_request": server_cpu_ms,
        "direct_cpu_ms_per_image": direct["cpu_ms_per_image"],
        "cpu_ratio": direct["cpu_ms_per_image"] / max(server_cpu_ms, 1e-9),
    }
    if clients == 1:
        out["direct_batch1_model_s"], out["direct_batch1_decode_and_model_s"] = statistics.median(model_s), statistics.median(full_s)
    return out


def report(args: argparse.Namespace, rows: list[dict], payloads: list[bytes], load_before: tuple[float, ...]) -> None:
    servers = ", ".join(f"{s.label} = `resnet serve {' '.join(s.flags)}`".replace(" `", "`") +
                        (f" from {s.src}" if s.src != ROOT / "src" else "") for s in map(Server.parse, args.server or ["serve="]))
    print(f"# resnet serve load test: {args.source or args.model + ' (random weights)'}, mode {args.mode}, "
          f"--max-batch {args.max_batch}, --max-wait-ms {args.max_wait_ms:g}, --decode-threads {args.decode_threads}, "
          f"{len(payloads)} photos from {args.images.name}, {args.seconds:g} s per row in {args.rounds} rounds alternating "
          f"with the direct model (each served stretch after a {args.lead_in:g} s unmeasured lead-in), torch threads {torch.get_num_threads()}, {CPUS} CPUs; servers: {servers}")
    print(f"# load average (1/5/15 min) before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| server | clients | req/s | p50 ms | p95 ms | p99 ms | errors | mean batch | batcher busy | client CPU ms/req "
          "| client share of the cores | server CPU ms/req | direct img/s (batch %d) | direct CPU ms/img | served / direct "
          "| served / direct, generator accounted | CPU-time ratio |" % args.max_batch)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['server']} | {r['clients']} | {r['requests_per_s']:.1f} | {1000 * r['p50_s']:.0f} | {1000 * r['p95_s']:.0f} | "
              f"{1000 * r['p99_s']:.0f} | {r['errors']} | {r['mean_batch']:.1f} | {100 * r['batcher_busy']:.0f} % | "
              f"{r['client_cpu_ms_per_request']:.2f} | {100 * r['client_cpu_share']:.1f} % | {r['server_cpu_ms_per_request']:.2f} | "
              f"{r['direct_images_per_s']:.1f} | {r['direct_cpu_ms_per_image']:.2f} | {r['ratio']:.2f} | "
              f"{r['ratio_generator_accounted']:.2f} | {r['cpu_ratio']:.2f} |")
    for r in (r for r in rows if r["clients"] == max(args.clients)):
        print(f"{r['clients']} clients, {r['server']}: served / direct {r['ratio']:.2f} raw, {r['ratio_generator_accounted']:.2f} with the "
              f"clients' {100 * r['client_cpu_share']:.1f} % of the cores given back, {r['cpu_ratio']:.2f} by CPU time "
              f"({r['direct_cpu_ms_per_image']:.2f} ms an image direct, {r['server_cpu_ms_per_request']:.2f} ms a request served); "
              f"target >= 0.80: {'PASS' if r['ratio_generator_accounted'] >= 0.8 and r['errors'] == 0 else 'MISS'}")
    for single in (r for r in rows if r["clients"] == 1):
        full, model = single["direct_batch1_decode_and_model_s"], single["direct_batch1_model_s"]
        print(f"1 client, {single['server']}: p50 {1000 * single['p50_s']:.1f} ms; direct batch-1 call {1000 * full:.1f} ms with "
              f"decoding (ratio {single['p50_s'] / full:.2f}, target <= 1.20), {1000 * model:.1f} ms network only "
              f"(ratio {single['p50_s'] / model:.2f})")


def main() -> int:
    args = parse()
    load_before = os.getloadavg()
    payloads = [p.read_bytes() for p in sorted(args.images.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS][: args.count]
    if not payloads:
        raise SystemExit(f"no photos in {args.images}; pass --images DIR")
    servers = [Server.parse(text) for text in args.server or ["serve="]]
    if len({s.label for s in servers}) < len(servers):
        raise SystemExit("give each --server its own LABEL")
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source or random_checkpoint(args.model, Path(tmp))
        direct = Direct(source, args.mode, payloads, args.max_batch)
        try:
            for server in servers:
                server.start(source, args)
            rows = [row for n in args.clients for row in measure(servers, direct, n, payloads, args)]
        finally:
            for server in servers:
                server.stop()
    report(args, rows, payloads, load_before)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
