"""resnet serve: every endpoint, every kind of bad input (the server stays healthy after each),
micro-batching of concurrent requests, and the page served without any external URL."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
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

pytestmark = pytest.mark.usefixtures("single_thread")
CLASSES = [f"class <{i}>" for i in range(10)]
LIMITS = ServeConfig(max_batch=8, max_wait_ms=2, max_bytes=300_000, max_pixels=1_000_000, timeout_s=3.0)


def _png(array: np.ndarray, mode: str | None = None, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG", **save)
    return buf.getvalue()


def _jpeg(img: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **save)
    return buf.getvalue()


def _photo(h: int = 60, w: int = 80) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("serve") / "tiny.safetensors"
    save_weights(resnet.create_model("resnet8"), path, {"classes": CLASSES, "dataset": "test"})
    return path


@pytest.fixture(scope="module")
def server(checkpoint: Path) -> Iterator[str]:
    member = load_member(str(checkpoint), "fp32")
    with BackgroundServer(create_app(member, LIMITS, mode="fp32")) as url:
        yield url


@pytest.fixture()
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def _healthy(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["engine"] == client.get("/v1/model").json()["engine"]  # the engine that runs it, on /healthz too
    assert client.post("/v1/predict", content=_png(_photo())).status_code == 200


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code and err["status"] == status
    return err["message"]


def test_predict_multipart_and_raw_agree_with_resnet_predict(client: httpx.Client, checkpoint: Path, tmp_path: Path) -> None:
    from resnet.evaluate import resolve_source
    from resnet.evaluate.predict import predict_files

    data = _png(_photo())
    (tmp_path / "p.png").write_bytes(data)
    raw = client.post("/v1/predict", content=data, headers={"content-type": "image/png"})
    form = client.post("/v1/predict?top=3", files={"file": ("p.png", data, "image/png")})
    assert raw.status_code == form.status_code == 200
    top5, top3 = raw.json()["top"], form.json()["top"]
    assert len(top5) == 5 and top3 == top5[:3]
    assert [t["class"] for t in top5] == [CLASSES[t["index"]] for t in top5]
    assert all(a["prob"] >= b["prob"] for a, b in zip(top5, top5[1:]))
    [expected] = list(predict_files(resolve_source(str(checkpoint)), [tmp_path / "p.png"], top=5))
    assert [t["index"] for t in top5] == [i for _, i, _ in expected.top]
    np.testing.assert_allclose([t["prob"] for t in top5], [p for _, _, p in expected.top], atol=1e-4)  # fused fp32 vs eager


def test_predict_with_cam_returns_a_png(client: httpx.Client) -> None:
    import base64

    for cam in ("true", "gradcam++"):
        r = client.post("/v1/predict", params={"cam": cam}, content=_png(_photo()))
        assert r.status_code == 200
        answer = r.json()["cam"]
        assert answer["method"] == ("gradcam" if cam == "true" else cam)
        head, payload = answer["png"].split(",", 1)
        assert head == "data:image/png;base64"
        with Image.open(io.BytesIO(base64.b64decode(payload))) as img:
            assert img.format == "PNG" and img.size == (320, 320) and img.mode == "RGB"


def test_model_health_and_metrics(client: httpx.Client) -> None:
    about = client.get("/v1/model").json()
    assert about["model"] == "resnet8" and about["mode"] == "fp32" and about["classes"] == CLASSES
    assert about["architecture"]["stem"] == "cifar" and about["preprocessing"]["input_size"] == 32
    assert about["weights"] == {"source": "tiny.safetensors", "kind": "resnet", "version": 1, "model": "resnet8", "dataset": "test"}
    assert about["limits"]["max_batch"] == 8 and "gradcam" in about["explain_methods"]
    assert client.get("/healthz").json()["status"] == "ok"
    client.post("/v1/predict", content=b"not an image")
    text = client.get("/metrics").text
    assert re.search(r'resnet_requests_total\{endpoint="/v1/predict",status="200"\} [1-9]', text)
    assert re.search(r'resnet_errors_total\{code="not_an_image"\} [1-9]', text)
    assert re.search(r'resnet_request_latency_seconds_count\{endpoint="/v1/predict"\} [1-9]', text)
    assert re.search(r"resnet_batch_size_count [1-9]", text) and "resnet_images_total" in text


def test_page_is_self_contained(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<script" in page and "v1/predict" in page and 'type="file"' in page and "paste" in page
    assert not re.search(r"(https?:)?//[\w.-]+", page.replace("://", "")), "the page must not reach any external URL"
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!#)", page) and "@import" not in page and "url(" not in page
    assert client.get("/docs").status_code == 404  # FastAPI's docs page would load a CDN


@pytest.mark.parametrize(
    "name",
    ["cmyk", "sixteen_bit", "palette", "palette_transparency", "alpha", "grey", "exif_rotated", "multi_frame_gif"],
)
def test_photos_of_every_mode_are_accepted(client: httpx.Client, name: str) -> None:
    photo = _photo()
    rgb = Image.fromarray(photo)
    if name == "cmyk":
        data = _jpeg(rgb.convert("CMYK"))
    elif name == "sixteen_bit":
        data = _png(photo[:, :, 0].astype(np.uint16) * 257)
        assert Image.open(io.BytesIO(data)).mode.startswith("I")
    elif name == "palette":
        data = _png(np.asarray(rgb.convert("P")), "P")
    elif name == "palette_transparency":
        buf = io.BytesIO()
        rgb.convert("P").save(buf, format="PNG", transparency=0)
        data = buf.getvalue()
    elif name == "alpha":
        data = _png(np.dstack([photo, photo[:, :, :1]]), "RGBA")
    elif name == "grey":
        data = _jpeg(rgb.convert("L"))
    elif name == "exif_rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees on display
        data = _jpeg(rgb, exif=exif.tobytes())
    else:
        buf = io.BytesIO()
        rgb.save(buf, format="GIF", save_all=True, append_images=[rgb.rotate(90)])
        data = buf.getvalue()
    r = client.post("/v1/predict", content=data)
    assert r.status_code == 200, r.text
    assert len(r.json()["top"]) == 5


def _broken_png() -> bytes:
    """A PNG whose compressed pixels are zeroed in the middle: beyond recovery (a truncated one is padded, and marked damaged)."""
    data = bytearray(_png(_photo(100, 100)))
    at = data.find(b"IDAT") + 204
    data[at : at + 50] = bytes(50)
    return bytes(data)


def test_bad_inputs_get_4xx_json_and_the_server_keeps_serving(client: httpx.Client) -> None:
    photo = _photo()
    cases = [
        (client.post("/v1/predict", content=b""), 400, "empty", "no image"),
        (client.post("/v1/predict", content=b"GIF89a but not really"), 415, "not_an_image", "not an image"),
        (client.post("/v1/predict", content=b"%PDF-1.4\n" + bytes(500)), 415, "not_an_image", "JPEG, PNG"),
        (client.post("/v1/predict", content=_broken_png()), 422, "undecodable", "broken data stream"),
        (client.post("/v1/predict", content=_png(np.zeros((1000, 1100), np.uint8))), 413, "too_many_pixels", "1,100,000"),
        (client.post("/v1/predict", content=bytes(400_000)), 413, "too_large", "300,000"),
        (client.post("/v1/predict", content=iter([bytes(100_000)] * 4)), 413, "too_large", "`max_bytes`"),  # chunked, no length
        (client.post("/v1/predict", files={"name": (None, "x")}), 400, "no_file", "no file"),
        (client.post("/v1/predict", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"}),
         400, "bad_multipart", "multipart"),
        (client.post("/v1/predict?top=0", content=_png(photo)), 400, "bad_top", "1 to 10"),
        (client.post("/v1/predict?top=11", content=_png(photo)), 400, "bad_top", "1 to 10"),
        (client.post("/v1/predict?top=many", content=_png(photo)), 400, "bad_parameter", "top"),
        (client.post("/v1/predict?cam=lime", content=_png(photo)), 400, "bad_cam", "gradcam"),
        (client.post("/v1/predict?cam=scorecam", content=_png(photo)), 400, "scorecam_disabled", "`allow_scorecam`"),
        (client.get("/v1/predict"), 405, "http_405", "POST /v1/predict"),
        (client.get("/nowhere"), 404, "http_404", "GET /v1/model"),
    ]
    for response, status, code, words in cases:
        assert words in _error(response, status, code)
        _healthy(client)
    assert client.get("/v1/predict").headers["allow"] == "POST"  # RFC 9110: a 405 says what is allowed
    jpeg = _jpeg(Image.fromarray(_photo(200, 200)), quality=95)
    r = client.post("/v1/predict", content=jpeg[: len(jpeg) // 2])  # truncated: padded by libjpeg, answered, marked
    assert r.status_code == 200 and r.json()["damaged"] == "Premature end of JPEG file"


def test_predict_lane_answers_a_crash_with_500_and_keeps_serving(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """POST /v1/predict is answered below FastAPI (serve/app.py's predict lane): its query parsing, refusals and a
    crash inside it still get the JSON bodies, the metrics and the 500 the rest of the app gives."""
    from resnet.serve import app as app_module

    with BackgroundServer(create_app(load_member(str(checkpoint), "none"), LIMITS)) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/v1/predict?top=+3", content=_png(_photo()))
        assert r.status_code == 200 and len(r.json()["top"]) == 3
        assert "top" in _error(client.post("/v1/predict?top=1.5", content=_png(_photo())), 400, "bad_parameter")

        async def crash(*args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

        with monkeypatch.context() as m:
            m.setattr(app_module, "_predict", crash)
            assert "RuntimeError" in _error(client.post("/v1/predict", content=_png(_photo())), 500, "internal")
        assert client.post("/v1/predict", content=_png(_photo())).status_code == 200
        text = client.get("/metrics").text
        assert 'endpoint="/v1/predict",status="500"' in text and 'code="internal"' in text and 'code="bad_parameter"' in text


def test_decompression_bomb_refused_before_decoding(client: httpx.Client) -> None:
    # a 1-bit 14000x14000 PNG: a few KB of file for 196 million pixels, over twice Pillow's own bomb limit
    img = Image.new("1", (14000, 14000))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < LIMITS.max_bytes
    message = _error(client.post("/v1/predict", content=buf.getvalue()), 413, "too_many_pixels")
    assert "too large" in message or "pixels" in message
    _healthy(client)


def _raw_request(server: str, head_extra: str, body: bytes, length: int) -> socket.socket:
    host, port = server.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {length}\r\n{head_extra}\r\n".encode() + body)
    return sock


def test_client_disconnecting_mid_upload(client: httpx.Client, server: str) -> None:
    before = client.get("/metrics").text.count('code="client_disconnected"')
    sock = _raw_request(server, "", _png(_photo())[:100], 50_000)
    time.sleep(0.2)
    sock.close()
    for _ in range(100):  # the server notices the hang-up on its own schedule
        text = client.get("/metrics").text
        if re.search(r'resnet_errors_total\{code="client_disconnected"\} [1-9]', text):
            break
        time.sleep(0.05)
    assert re.search(r'resnet_errors_total\{code="client_disconnected"\} [1-9]', text), before
    assert 'status="500"' not in text
    _healthy(client)


def _reply(sock: socket.socket) -> tuple[bytes, bytes]:
    """Status line + headers, and the JSON body, of the answer on ``sock``."""
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    sock.close()
    head, body = reply.split(b"\r\n\r\n", 1)
    return head, body


def test_slow_upload_times_out(client: httpx.Client, server: str) -> None:
    sock = _raw_request(server, "", b"\x89PNG", 50_000)  # then nothing: the upload stalls
    head, body = _reply(sock)
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["code"] == "upload_timeout"
    _healthy(client)


def test_micro_batching_gathers_concurrent_requests(checkpoint: Path) -> None:
    """8 requests in flight at once (their uploads held back, then completed) run as 2 batches of 4."""
    member = load_member(str(checkpoint), "none")
    config = ServeConfig(max_batch=4, max_wait_ms=5000, timeout_s=60)
    photos = [_png(_photo(40 + i, 40)) for i in range(8)]
    with BackgroundServer(create_app(member, config)) as url:
        sockets = [_raw_request(url, "Connection: close\r\n", p[:50], len(p)) for p in photos]
        for _ in range(200):  # until the server has all 8 requests in hand
            if re.search(r"resnet_requests_in_flight 8.0", httpx.get(f"{url}/metrics").text):
                break
            time.sleep(0.05)
        for sock, p in zip(sockets, photos):
            sock.sendall(p[50:])
        sizes = [json.loads(_reply(sock)[1])["batch_size"] for sock in sockets]
        text = httpx.get(f"{url}/metrics").text
    assert sizes == [4] * 8
    assert re.search(r'resnet_batch_size_bucket\{le="4.0"\} 2.0', text) and "resnet_batch_size_count 2.0" in text


def test_a_lone_request_does_not_wait_for_company(checkpoint: Path) -> None:
    member = load_member(str(checkpoint), "none")
    with BackgroundServer(create_app(member, ServeConfig(max_batch=4, max_wait_ms=60_000, timeout_s=30))) as url:
        r = httpx.post(f"{url}/v1/predict", content=_png(_photo()), timeout=30)  # would time out if it waited
    assert r.status_code == 200 and r.json()["batch_size"] == 1


def test_batched_answers_equal_single_answers(checkpoint: Path) -> None:
    """Each request gets its own row of the batch: answers do not depend on company."""
    member = load_member(str(checkpoint), "none")
    photos = [_png(_photo(30 + 7 * i, 50)) for i in range(6)]
    with BackgroundServer(create_app(member, ServeConfig(max_batch=1))) as url:
        alone = [httpx.post(f"{url}/v1/predict", content=p).json()["top"] for p in photos]
    together: dict[int, list] = {}
    with BackgroundServer(create_app(member, ServeConfig(max_batch=6, max_wait_ms=5000))) as url:
        def one(i: int) -> None:
            together[i] = httpx.post(f"{url}/v1/predict", content=photos[i], timeout=60).json()["top"]

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i in range(6):
        assert [t["index"] for t in together[i]] == [t["index"] for t in alone[i]]
        np.testing.assert_allclose([t["prob"] for t in together[i]], [t["prob"] for t in alone[i]], atol=1e-5)


def test_serve_command_refuses_bad_settings(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from resnet.cli import main

    assert main(["serve", str(checkpoint), "--max-batch", "0"]) == 2
    assert "--max-batch" in capsys.readouterr().err
    assert main(["serve", str(checkpoint), "--optimize", "int8"]) == 1  # no recorded training data, none named
    assert "pass --calibration images" in capsys.readouterr().err
    assert main(["serve", "/no/such/file.safetensors"]) == 2
    assert "no/such" in capsys.readouterr().err


def test_int8_server_calibrates_on_photos_and_explains_its_float_model(checkpoint: Path, tmp_path: Path) -> None:
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(_png(_photo(36 + i, 44)))
    member = load_member(str(checkpoint), "int8", calibration=str(tmp_path))
    assert member.optimized is not None and member.metadata["optimize"] == "int8"
    with BackgroundServer(create_app(member, ServeConfig(), mode="int8")) as url:
        assert httpx.get(f"{url}/v1/model").json()["mode"] == "int8"
        r = httpx.post(f"{url}/v1/predict", params={"cam": "gradcam"}, content=_png(_photo()), timeout=60)
    assert r.status_code == 200 and r.json()["cam"]["png"].startswith("data:image/png;base64,")


def test_error_replies_name_the_serve_commands_flags_when_started_from_it(checkpoint: Path) -> None:
    from resnet.cli import build_parser
    from resnet.cli.options import as_flags, flag_names

    parser = build_parser()
    names = flag_names(parser, parser.parse_args(["serve", str(checkpoint)]))  # what `resnet serve` passes
    member = load_member(str(checkpoint), "none")
    with BackgroundServer(create_app(member, LIMITS, wording=lambda text: as_flags(text, names))) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            r = client.post("/v1/predict?cam=scorecam", content=_png(_photo()))
            assert r.status_code == 400 and "start the server with --allow-scorecam" in r.json()["error"]["message"]
            r = client.post("/v1/predict", content=bytes(400_000))
            assert r.status_code == 413 and "a larger --max-bytes" in r.json()["error"]["message"]
            assert client.get("/v1/model").json()["mode"] == "none"


def _direct_batcher(checkpoint: Path) -> "MicroBatcher":
    from resnet.serve.batcher import MicroBatcher

    return MicroBatcher(load_member(str(checkpoint), "none"), ServeConfig(max_batch=4, max_wait_ms=60_000))


def test_an_idle_batcher_decodes_a_lone_request_itself_without_waiting(checkpoint: Path) -> None:
    """A request alone in flight is queued undecoded: the batching thread decodes and runs it at once
    (max_wait_ms is a minute: waiting would time the future out), and a bad upload fails only its own request."""
    from resnet.serve.batcher import Job
    from resnet.serve.limits import BadRequest, decode_upload

    batcher = _direct_batcher(checkpoint)
    batcher.start()
    where: list[str] = []

    def decode(data: bytes):
        where.append(threading.current_thread().name)
        return decode_upload(data, batcher.member.preprocess, LIMITS)

    try:
        batcher.begin()
        assert batcher.idle
        outcome = batcher.submit(Job(None, 3, decode=lambda: decode(_png(_photo())))).result(timeout=30)
        assert where == ["resnet-serve-batcher"] and outcome.batch_size == 1 and len(outcome.top) == 3
        assert tuple(outcome.view.shape) == (3, 32, 32)
        bad = batcher.submit(Job(None, 3, decode=lambda: decode(b"not an image")))
        with pytest.raises(BadRequest, match="not an image"):
            bad.result(timeout=30)
        assert batcher.alive and batcher.submit(Job(None, 1, decode=lambda: decode(_png(_photo())))).result(timeout=30).top
        batcher.begin()  # a second request in flight: no longer idle, its image goes through the decoding pool
        assert not batcher.idle
    finally:
        batcher.stop()


def test_decoding_thread_queues_the_job_or_fails_its_request(checkpoint: Path) -> None:
    """The path of a request that finds the batcher busy: decoded on the calling thread, then batched."""
    from resnet.serve.batcher import Job
    from resnet.serve.limits import BadRequest, decode_upload

    batcher = _direct_batcher(checkpoint)
    batcher.start()
    pre = batcher.member.preprocess
    try:
        good = Job(None, 2, decode=lambda: decode_upload(_png(_photo()), pre, LIMITS))
        bad = Job(None, 2, decode=lambda: decode_upload(_broken_png(), pre, LIMITS))
        for job in (bad, good):
            batcher.decode_and_submit(job)
        assert good.view is not None and len(good.future.result(timeout=30).top) == 2
        with pytest.raises(BadRequest) as err:
            bad.future.result(timeout=1)
        assert err.value.status == 422 and bad.view is None
    finally:
        batcher.stop()


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_both_http_parsers_bound_the_request_head_and_take_large_bodies(checkpoint: Path, http: str) -> None:
    pytest.importorskip(http)
    from resnet.serve.config import MAX_HEAD_BYTES

    member = load_member(str(checkpoint), "none")
    with BackgroundServer(create_app(member, LIMITS), http=http) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ")
            try:
                for _ in range(4 * MAX_HEAD_BYTES // 8192):
                    sock.sendall(b"a" * 8192)
            except OSError:
                pass  # the server closed the connection already
            assert sock.recv(64).startswith(b"HTTP/1.1 431")
        with httpx.Client(base_url=url, timeout=30) as client:
            photo = _png(_photo(300, 300))  # ~270 kB: many reads, the last ending a request
            assert len(photo) > 2 * MAX_HEAD_BYTES
            for _ in range(3):  # on one keep-alive connection
                r = client.post("/v1/predict", content=photo, headers={"x-note": "n" * 4000})
                assert r.status_code == 200 and r.json()["batch_size"] == 1
            _healthy(client)


def test_auto_takes_what_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from resnet.errors import UsageError
    from resnet.serve.server import implementations

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)  # neither httptools nor uvloop
    assert implementations("auto", "auto") == ("h11", "asyncio")
    with pytest.raises(UsageError, match="httptools is not installed"):
        implementations("httptools", "auto")


def test_http_and_loop_settings(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from resnet.cli import main
    from resnet.errors import UsageError
    from resnet.serve.server import uvicorn_config

    app = create_app(load_member(str(checkpoint), "none"))
    pytest.importorskip("httptools")
    pytest.importorskip("uvloop")
    from resnet.serve.http_tools import BoundedHttpTools

    assert issubclass(uvicorn_config(app, "127.0.0.1", 0, http="httptools", loop="uvloop").http, BoundedHttpTools)
    config = uvicorn_config(app, "127.0.0.1", 0)  # auto: httptools and uvloop, installed here
    assert config.http.__name__ == "BoundedHttpTools" and config.loop == "uvloop" and config.h11_max_incomplete_event_size == 64 * 1024
    config = uvicorn_config(app, "127.0.0.1", 0, http="h11", loop="asyncio")
    assert config.http.__name__ == "BoundedH11" and config.loop == "asyncio"
    with pytest.raises(UsageError, match="`http` is one of auto, httptools, h11"):
        uvicorn_config(app, "127.0.0.1", 0, http="h2")
    with pytest.raises(SystemExit) as exit_:
        main(["serve", str(checkpoint), "--http", "h2"])
    assert exit_.value.code == 2 and "--http" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(375, 500), (500, 333), (64, 48)])
def test_an_upload_is_resized_from_its_decoded_pixels_as_predict_resizes_a_copy(shape: tuple[int, int]) -> None:
    """decode_upload resizes the decoder's [H, W, C] pixels as a channels-last view (no [C, H, W] copy, torch's
    fast uint8 path): the same pixels, to the last bit, as the network's view of read_image_bytes' copy."""
    from resnet.data.decode import read_image_bytes
    from resnet.evaluate.preprocess import Preprocess
    from resnet.explain import network_view
    from resnet.serve.limits import decode_upload

    pre = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=224, resize=256, crop=224)
    for data in (_jpeg(Image.fromarray(_photo(*shape)), quality=90), _png(_photo(*shape))):
        for p in (pre, pre.with_sizes(resize=40, crop=32)):
            view, damaged = decode_upload(data, p, ServeConfig())
            copy = network_view(read_image_bytes(data), p)
            assert damaged is None and view.is_contiguous() and torch.equal(view, copy)
