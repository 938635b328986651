"""resnet serve under attack: connection bounds, head and body deadlines, the head size the README states,
413 without reading the body, 503 with Retry-After, log lines rate-limited, a small idle-connection flood;
and the private uvicorn API that serve/http.py relies on, checked against the pinned uvicorn."""

from __future__ import annotations

import io
import logging
import re
import socket
import time
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

import resnet
from resnet.models.interop import save_weights
from resnet.serve import BackgroundServer, ServeConfig, create_app, load_member
from resnet.serve.config import MAX_HEAD_BYTES

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parents[1]


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("limits") / "tiny.safetensors"
    save_weights(resnet.create_model("resnet8"), path, {"classes": [str(i) for i in range(10)], "dataset": "test"})
    return load_member(str(path), "none")


@pytest.fixture(scope="module")
def server(member) -> Iterator[str]:
    config = ServeConfig(max_batch=4, max_bytes=300_000, timeout_s=3.0, max_connections=8, max_in_flight=2,
                         head_timeout_s=0.5, keep_alive_s=1.0, retry_after_s=2)
    with BackgroundServer(create_app(member, config)) as url:
        yield url


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data


def _healthy(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.post("/v1/predict", content=_png()).status_code == 200


def test_uvicorn_private_api_we_rely_on_is_there() -> None:
    import h11
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    pinned = re.search(r"^uvicorn==([\w.]+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned and uvicorn.__version__ == pinned.group(1), "serve/http.py was checked against the pinned uvicorn only"
    for name in ("connection_made", "connection_lost", "data_received"):
        assert callable(getattr(H11Protocol, name))
    assert isinstance(h11.Connection(h11.SERVER).trailing_data, tuple)
    config = uvicorn.Config(lambda *_: None, timeout_keep_alive=3, h11_max_incomplete_event_size=MAX_HEAD_BYTES)
    config.load()
    proto = H11Protocol(config, uvicorn.server.ServerState(), {}, _loop=__import__("asyncio").new_event_loop())
    for name in ("connections", "conn", "loop", "transport", "timeout_keep_alive"):
        assert hasattr(proto, name), name
    assert proto.timeout_keep_alive == 3
    if __import__("importlib").util.find_spec("httptools"):
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        for name in ("on_message_begin", "on_headers_complete", "on_message_complete", "data_received"):
            assert callable(getattr(HttpToolsProtocol, name))


def test_head_limit_is_what_the_readme_says(server: str) -> None:
    stated = re.search(r"request heads over (\d+) KiB", (ROOT / "README.md").read_text())
    assert stated and int(stated.group(1)) * 1024 == MAX_HEAD_BYTES
    for size, status in ((MAX_HEAD_BYTES - 1024, b"200"), (MAX_HEAD_BYTES + 1024, b"431"), (100 * 1024, b"431")):
        with _connect(server) as sock:  # the whole head in one write: h11 alone let 100 KiB through
            pad = size - 60
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * pad + b"\r\nConnection: close\r\n\r\n")
            assert _read_all(sock).startswith(b"HTTP/1.1 " + status), size
    _healthy(server)


def test_413_closes_the_connection_without_reading_the_body(server: str) -> None:
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000000\r\n\r\n")
        sock.settimeout(5)
        sent, chunk = 0, b"\0" * 65536
        try:
            while sent < 100_000_000:
                sent += sock.send(chunk)
        except OSError:
            pass  # the server stopped taking it
        reply = _read_all(sock)
    assert sent < 16 << 20, f"the server read {sent:,} bytes of a body it refused"
    if reply:  # the answer arrives unless the reset that closes the connection overtook it
        assert reply.startswith(b"HTTP/1.1 413") and b"connection: close" in reply.lower()
    with httpx.Client(base_url=server, timeout=10) as client:  # a body the client finishes sending: the 413 is seen
        r = client.post("/v1/predict", content=bytes(400_000))
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    _healthy(server)


def test_slow_head_gets_408_and_is_closed(server: str) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 408") and b"head_timeout" in reply
    _healthy(server)


def test_connection_bound_evicts_idle_heads_then_refuses_with_retry_after(server: str) -> None:
    idle = [_connect(server) for _ in range(8)]
    for sock in idle:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # partial heads, held
    time.sleep(0.1)
    with httpx.Client(base_url=server, timeout=10) as client:  # a real request still gets in: an idle head makes room
        assert client.get("/healthz").status_code == 200
    # read every idle connection to its end: the server drops a connection from its count before it closes the
    # socket, so once all have ended none is still counted when the busy ones arrive (any() would stop at the first)
    replies = [_read_all(s) for s in idle]
    assert any(r.startswith(b"HTTP/1.1 408") for r in replies)
    for s in idle:
        s.close()
    # connections past their heads (uploading bodies) are not evicted: beyond the bound, 503 + Retry-After at once
    busy = [_connect(server) for _ in range(8)]
    for sock in busy:
        sock.sendall(b"POST /v1/model HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    time.sleep(0.2)
    with _connect(server) as sock:
        reply = _read_all(sock)
    for s in busy:
        s.close()
    assert reply.startswith(b"HTTP/1.1 503") and b"retry-after: 2" in reply.lower() and b"too_many_connections" in reply
    time.sleep(0.2)
    _healthy(server)


def test_in_flight_bound_answers_503_with_retry_after_and_health_stays_up(server: str) -> None:
    uploads = [_connect(server) for _ in range(2)]
    for sock in uploads:  # two predictions in flight: their uploads stall
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n\x89PNG")
    time.sleep(0.2)
    with httpx.Client(base_url=server, timeout=10) as client:
        r = client.post("/v1/predict", content=_png())
        assert r.status_code == 503 and r.headers["retry-after"] == "2" and r.json()["error"]["code"] == "busy"
        assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200
    for sock in uploads:
        sock.close()
    time.sleep(0.3)
    _healthy(server)


def test_repeated_log_lines_are_written_once_per_interval_with_a_count() -> None:
    from resnet.serve.lograte import RateLimit

    now = [0.0]
    logger = logging.getLogger("resnet.test.lograte")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.addFilter(RateLimit(10.0, clock=lambda: now[0]))
    logger.propagate = False
    try:
        for i in range(1000):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                logger.exception("socket.accept() out of system resource")
            now[0] += 0.001  # 1000 in one second
        logger.warning("another cause")
        now[0] += 10.0
        logger.exception("socket.accept() out of system resource")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert sum(line.startswith("Traceback") for line in lines) == 1  # one traceback, the first
    assert [line for line in lines if line.startswith("socket")] == [
        "socket.accept() out of system resource", "socket.accept() out of system resource (999 more like it in the last 11 s)"]
    assert "another cause" in lines


def test_a_small_idle_connection_flood_does_not_stall_others(server: str) -> None:
    """60 partial heads against a bound of 8: every real request is answered, no 5xx, the server keeps serving."""
    flood: list[socket.socket] = []
    answered = 0
    with httpx.Client(base_url=server, timeout=10) as client:
        before = _five_hundreds(client.get("/metrics").text)
        for i in range(60):
            sock = _connect(server)
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n")
            flood.append(sock)
            if i % 10 == 9:
                answered += client.get("/healthz").status_code == 200
                answered += client.post("/v1/predict", content=_png()).status_code == 200
        metrics = client.get("/metrics").text
    for sock in flood:
        sock.close()
    assert answered == 12
    assert _five_hundreds(metrics) == before
    _healthy(server)


def _five_hundreds(metrics: str) -> float:
    return sum(float(n) for n in re.findall(r'resnet_requests_total\{[^}]*status="5\d\d"[^}]*\} (\S+)', metrics))


def _corrupt_jpeg() -> bytes:
    """A JPEG that libjpeg decodes only with recovery ("Corrupt JPEG data: ... extraneous bytes before marker")."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((200, 300, 3)) * 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    data, mutate = bytearray(buf.getvalue()), np.random.default_rng(0)
    for _ in range(3):
        data[int(mutate.integers(600, len(data) - 10))] = int(mutate.integers(0, 256))
    return bytes(data)


def test_damaged_pictures_are_said_to_be_damaged_and_strict_refuses_them(server: str, member) -> None:
    from resnet.data.decode import decode_checked

    data = _corrupt_jpeg()
    said = decode_checked(data).damaged
    assert said and said.startswith("Corrupt JPEG data")
    with httpx.Client(base_url=server, timeout=10) as client:
        r = client.post("/v1/predict", content=data)
        assert r.status_code == 200 and r.json()["damaged"] == said and r.json()["top"]
        assert "damaged" not in client.post("/v1/predict", content=_png()).json()
    with BackgroundServer(create_app(member, ServeConfig(strict=True))) as url, httpx.Client(base_url=url, timeout=10) as client:
        r = client.post("/v1/predict", content=data)
        assert r.status_code == 422 and r.json()["error"]["code"] == "damaged" and said in r.json()["error"]["message"]
        assert client.post("/v1/predict", content=_png()).status_code == 200


def test_pixel_budget_is_checked_from_the_header_and_counts_large_jpegs_at_their_reduced_scale(member) -> None:
    big_png = io.BytesIO()
    Image.new("1", (3000, 3000)).save(big_png, "PNG")  # 9 M pixels in a few KB
    big_jpeg = io.BytesIO()
    Image.new("RGB", (3000, 3000), (90, 120, 200)).save(big_jpeg, "JPEG")  # decoded at 1/4 for a 32-pixel network
    with BackgroundServer(create_app(member, ServeConfig(max_pixels=4_000_000))) as url, httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/v1/predict", content=big_png.getvalue())
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_pixels" and "limit of 4,000,000" in r.json()["error"]["message"]
        assert client.post("/v1/predict", content=big_jpeg.getvalue()).status_code == 200


def test_a_large_jpeg_is_decoded_at_reduced_scale_in_little_memory(tmp_path: Path) -> None:
    """8000x6000 (144 MB of pixels decoded in full) read for a 32-pixel resize: the decode adds under 40 MB."""
    import subprocess
    import sys

    path = tmp_path / "big.jpg"
    Image.radial_gradient("L").resize((8000, 6000)).convert("RGB").save(path, quality=85)
    probe = (
        "import resource, sys\n"
        "from resnet.data.decode import read_image_checked\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "d = read_image_checked(data, 3, min_side=32)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(d.pixels.shape, (after - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120, check=True).stdout.split(")")
    shape, grown_mb = out[0] + ")", int(out[1])
    assert shape == "(750, 1000, 3)" and grown_mb < 40, (shape, grown_mb)
