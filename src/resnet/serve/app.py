"""The HTTP application: ``POST /v1/predict``, ``GET /v1/model``, ``GET /healthz``, ``GET /metrics``
and the page at ``/``. Build it with :func:`create_app`; :mod:`.server` runs it under uvicorn."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict
from functools import partial
from importlib import resources
from typing import Any, AsyncIterator, Callable, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..inference.network import Network
from ..explain import METHODS
from ..utils.modes import NONE
from .batcher import Job, MicroBatcher, Outcome
from .limits import BadRequest, ServeConfig, check_header, decode_upload
from .metrics import Metrics
from . import schema

log = logging.getLogger("resnet.serve")
T = TypeVar("T")
ENDPOINTS = ("/", "/v1/predict", "/v1/model", "/healthz", "/metrics")
CAM_DISPLAY = 320  # side of the CAM picture sent back (the network's view is scaled up to it)


def create_app(member: Network, config: ServeConfig | None = None, mode: str = NONE, *,
               wording: Callable[[str], str] | None = None) -> FastAPI:
    """A FastAPI app serving ``member`` (already optimised for ``mode``, if any). Error messages name settings as
    :class:`ServeConfig` spells them (`max_bytes`); ``wording`` rewrites them (``resnet serve`` shows its flags)."""
    config = config or ServeConfig()
    metrics = Metrics(config.max_batch)
    batcher = MicroBatcher(member, config, metrics.observe_batch)
    workers = Workers(config.decode_threads)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(batcher.warm_up)
        batcher.start()
        yield
        await run_in_threadpool(batcher.stop)
        workers.close()

    app = FastAPI(title=f"resnet serve: {member.name}", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=schema.DESCRIPTION)
    app.state.batcher, app.state.metrics, app.state.config = batcher, metrics, config
    reply = _replier(metrics, config, wording or (lambda text: text))

    async def predict_request(request: Request) -> JSONResponse:
        k, method = _top(request.query_params.get("top"), config, member), _cam_method(request.query_params.get("cam"), config)
        batcher.begin()
        metrics.in_flight.inc()
        try:
            return await _predict(request, member, batcher, workers, config, k, method)
        finally:
            batcher.end()
            metrics.in_flight.dec()

    app.add_middleware(_PredictLane, answer=predict_request, reply=reply)
    app.add_middleware(_Admit, config=config, metrics=metrics)
    app.add_middleware(_Observe, metrics=metrics)
    _add_error_handlers(app, reply)
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    about = describe_model(member, mode, config)

    @app.get("/", response_class=HTMLResponse, responses=schema.BUSY)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/healthz", response_model=None, responses=schema.HEALTH)
    async def healthz() -> JSONResponse:
        ok = batcher.alive
        return JSONResponse({"status": "ok" if ok else "down", "queue": batcher.waiting, "mode": about["mode"],
                             "engine": about["engine"]}, status_code=200 if ok else 503)

    @app.get("/metrics", response_class=Response, responses=schema.METRICS)
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        metrics.queue.set(batcher.waiting)
        return Response(metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/model", responses=schema.BUSY)
    async def model_info() -> dict[str, Any]:
        return about

    @app.post("/v1/predict", response_model=None, responses=schema.PREDICT, openapi_extra=schema.PREDICT_BODY)
    async def predict(request: Request) -> JSONResponse:  # answered by _PredictLane before routing; here for the schema
        return await predict_request(request)

    return app


def describe_model(member: Network, mode: str, config: ServeConfig) -> dict[str, Any]:
    """What ``GET /v1/model`` answers: architecture, classes, preprocessing, weights, mode, engine, limits."""
    from pathlib import Path

    spec = getattr(member.model, "spec", None)
    scalars = {k: v for k, v in member.metadata.items() if isinstance(v, (str, int, float, bool)) and k not in ("format", "optimize", "engine")}
    return {
        "name": member.name,
        "model": member.model_name,
        "architecture": {k: v for k, v in asdict(spec).items() if k != "extra"} if spec is not None else None,
        "num_classes": member.num_classes,
        "classes": member.class_names(),
        "preprocessing": member.preprocess.as_dict(),
        "weights": {"source": Path(member.source).name, "kind": member.kind, **scalars},
        "mode": mode,
        "engine": member.metadata.get("engine", "pytorch eager"),
        "explain_methods": list(METHODS),
        "limits": config.as_dict(),
    }


def _top(top: str | None, config: ServeConfig, member: Network) -> int:
    if top is not None and re.fullmatch(r"\s*[+-]?\d{1,9}\s*", top) is None:
        raise BadRequest(400, "bad_parameter", f"invalid request parameter (query.top: {top!r} is not a whole number)")
    k = config.top if top is None else int(top)
    if not 1 <= k <= member.num_classes:
        raise BadRequest(400, "bad_top", f"top={top} is out of range; ask for 1 to {member.num_classes} classes")
    return k


def _cam_method(cam: str | None, config: ServeConfig) -> str | None:
    if cam is not None:
        cam = cam.replace(" ", "+")  # an unescaped ?cam=gradcam++ arrives as "gradcam  "
    if cam is None or cam.lower() in ("", "0", "false", "no", "none"):
        return None
    if cam.lower() in ("1", "true", "yes"):
        return METHODS[0]
    if cam.lower() not in METHODS:
        raise BadRequest(400, "bad_cam", f"cam={cam!r} is no explain method; use cam=true or one of {', '.join(METHODS)}")
    if cam.lower() == "scorecam" and not config.allow_scorecam:
        raise BadRequest(400, "scorecam_disabled", "Score-CAM is off on this server (one forward pass per channel would hold up "
                         "every request); use cam=gradcam or cam=gradcam++, or start the server with `allow_scorecam`")
    return cam.lower()


class Workers:
    """Threads that decode uploads and draw CAM pictures, each with one PyTorch intra-op thread; by
    default two per core, so that decoding keeps up while the network holds the cores; anyio's default pool
    oversubscribed a loaded machine (measured: docs/results/serve/README.md)."""

    def __init__(self, threads: int = 0) -> None:
        import torch

        from ..data.decode import usable_cpus

        self.pool = ThreadPoolExecutor(threads or 2 * usable_cpus(), thread_name_prefix="resnet-decode",
                                       initializer=torch.set_num_threads, initargs=(1,))
        # Large images (over `large_pixels` decoded) wait for this one thread: a flood of them slows the flooders,
        # not the normal requests on the pool above, and holds one large decode's memory at a time.
        self.large = ThreadPoolExecutor(1, thread_name_prefix="resnet-decode-large", initializer=torch.set_num_threads, initargs=(1,))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.large.shutdown(wait=False, cancel_futures=True)


def _decode_large(batcher: MicroBatcher, job: Job) -> None:
    """A large image decoded on the large-image thread; the memory its decode freed goes back to the system
    (glibc keeps freed arenas otherwise, and the server's RSS stayed up after a flood of large images)."""
    batcher.decode_and_submit(job)
    _trim()


def _trim() -> None:
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


async def _predict(
    request: Request, member: Network, batcher: MicroBatcher, workers: Workers, config: ServeConfig, top: int, cam: str | None
) -> JSONResponse:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.timeout_s
    try:
        body = await asyncio.wait_for(read_body(request, config.max_bytes), timeout=config.timeout_s)
    except asyncio.TimeoutError:
        raise BadRequest(408, "upload_timeout", f"the upload took longer than {config.timeout_s:g} s; send it faster or in a smaller file") from None
    data, name = await image_bytes(request, body)
    _, width, height = check_header(data, config, member.preprocess.resize_size)  # header only: 4xx before any decoding
    job = Job(None, top, cam, decode=partial(decode_upload, data, member.preprocess, config, name, header_checked=True))
    answer = asyncio.wrap_future(job.future)  # the one future this request awaits, from whichever thread ends it
    if width * height > config.large_pixels:
        workers.large.submit(_decode_large, batcher, job)
    elif batcher.idle:  # the batching thread decodes it itself: no hop through the decoding pool
        batcher.submit(job)
    else:
        workers.pool.submit(batcher.decode_and_submit, job)
    try:
        outcome: Outcome = await asyncio.wait_for(answer, timeout=max(deadline - loop.time(), 0.001))
    except asyncio.TimeoutError:
        raise BadRequest(503, "timeout", f"no answer within {config.timeout_s:g} s: the server is overloaded; retry later") from None
    reply: dict[str, Any] = {
        "model": member.name,
        "top": [{"class": c, "index": i, "prob": round(p, 6)} for c, i, p in outcome.top],
        "batch_size": outcome.batch_size,
    }
    if job.damaged:
        reply["damaged"] = job.damaged
    if cam and outcome.heatmap is not None:
        reply["cam"] = {"method": cam, "png": await workers.run(cam_png, outcome.view, outcome.heatmap)}
    return JSONResponse(reply)  # as is: FastAPI's encoder would walk the plain dict again


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``max_bytes``; a client that hangs up is a 499."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(size, max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest(499, "client_disconnected", f"the client closed the connection after {size:,} bytes of the upload") from None
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int) -> BadRequest:
    return BadRequest(413, "too_large", f"the request body ({size:,} bytes so far) is over the server's limit of {max_bytes:,} bytes; "
                      "send a smaller image (or start the server with a larger `max_bytes`)")


async def image_bytes(request: Request, body: bytes) -> tuple[bytes, str]:
    """The image in ``body``: the first file of a multipart form, else the body itself."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return body, "upload"

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=4, max_fields=16)
    except (HTTPException, ValueError, AssertionError) as err:
        raise BadRequest(400, "bad_multipart", f"the multipart form cannot be parsed ({getattr(err, 'detail', err)}); "
                         "send the image as a file field (curl -F file=@photo.jpg) or as the raw body") from None
    for value in form.values():
        if hasattr(value, "read") and hasattr(value, "filename"):
            return await value.read(), str(value.filename or "upload")
    raise BadRequest(400, "no_file", "the multipart form holds no file; send the image as a file field (curl -F file=@photo.jpg)")


def cam_png(view: Any, heatmap: Any) -> str:
    """The CAM over the network's view as a ``data:image/png;base64,...`` URL, scaled up for display."""
    from PIL import Image

    from ..explain.cam import overlay

    picture = Image.fromarray(overlay(view.permute(1, 2, 0).numpy(), heatmap))
    scale = max(1.0, CAM_DISPLAY / max(picture.size))
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _replier(metrics: Metrics, config: ServeConfig, wording: Callable[[str], str]) -> Callable[[BadRequest], JSONResponse]:
    """The one way a refusal is answered: counted, worded for the caller, with the headers its status needs."""
    def reply(err: BadRequest) -> JSONResponse:
        metrics.errors.labels(err.code).inc()
        headers = {**_headers_for(err.status, config), **err.headers}
        return JSONResponse(BadRequest(err.status, err.code, wording(err.message)).as_json(), status_code=err.status, headers=headers)

    return reply


def _internal(err: Exception) -> BadRequest:
    log.exception("internal error")
    return BadRequest(500, "internal", f"internal error ({type(err).__name__}); the server keeps running, see its log")


def _add_error_handlers(app: FastAPI, reply: Callable[[BadRequest], JSONResponse]) -> None:
    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, err: BadRequest) -> JSONResponse:
        return reply(err)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in err.errors())
        return reply(BadRequest(400, "bad_parameter", f"invalid request parameter ({where})"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        detail = str(err.detail)
        if err.status_code in (404, 405):
            detail += f" ({request.method} {request.url.path}); the endpoints are GET /, POST /v1/predict, GET /v1/model, GET /healthz, GET /metrics"
        return reply(BadRequest(err.status_code, f"http_{err.status_code}", detail, dict(err.headers or {})))  # 405: Allow

    @app.exception_handler(Exception)
    async def internal(_: Request, err: Exception) -> JSONResponse:
        return reply(_internal(err))


def _headers_for(status: int, config: ServeConfig) -> dict[str, str]:
    """503s say when to come back; a 413 closes the connection, so that the body it refused is never read."""
    if status == 503:
        return {"retry-after": str(config.retry_after_s)}
    if status == 413:
        return {"connection": "close"}
    return {}


UNCOUNTED = ("/healthz", "/metrics")  # answered whatever the load: monitoring must see an overloaded server


class _Admit:
    """ASGI middleware: at most ``config.max_in_flight`` requests handled at once (those to
    :data:`UNCOUNTED` aside); the next get 503 with ``Retry-After`` at once, their bodies unread."""

    def __init__(self, app: Any, config: ServeConfig, metrics: Metrics) -> None:
        self.app, self.config, self.metrics = app, config, metrics
        self.in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNCOUNTED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.config.max_in_flight:
            self.metrics.errors.labels("busy").inc()
            err = BadRequest(503, "busy", f"the server is handling its limit of {self.config.max_in_flight} requests; "
                             f"retry in {self.config.retry_after_s} s")
            await JSONResponse(err.as_json(), 503, headers={**_headers_for(503, self.config), "connection": "close"})(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class _PredictLane:
    """ASGI middleware, inside admission and metrics: ``POST /v1/predict`` answered here, outside FastAPI's routing,
    dependency solving and exception layers, which took about a third of the event loop's time per request for
    a small network (docs/results/serve/README.md); every other request goes on to the app."""

    def __init__(self, app: Any, answer: Callable[[Request], Any], reply: Callable[[BadRequest], JSONResponse]) -> None:
        self.app, self.answer, self.reply = app, answer, reply

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/predict":
            await self.app(scope, receive, send)
            return
        try:
            response = await self.answer(Request(scope, receive))
        except BadRequest as err:
            response = self.reply(err)
        except Exception as err:  # noqa: BLE001 - the server answers 500 and keeps serving
            response = self.reply(_internal(err))
        await response(scope, receive, send)


class _Observe:
    """ASGI middleware counting every HTTP answer and timing it, by endpoint and status."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def observed_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            endpoint = scope.get("path", "") if scope.get("path", "") in ENDPOINTS else "other"
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
