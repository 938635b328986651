"""Loading what to serve (as ``resnet predict`` does) and running the app under uvicorn, in the
foreground (:func:`serve_forever`) or on a background thread (:class:`BackgroundServer`, for tests
and benchmarks)."""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from typing import Any, Sequence

from ..errors import DataError, UsageError
from ..utils.modes import DEFAULT_ENGINE, NONE
from ..evaluate.sources import resolve_source
from ..inference.network import Network
from ..inference.prepare import prepare

from .config import DEFAULT_HOST, DEFAULT_PORT, EVENT_LOOPS, HTTP_IMPLEMENTATIONS, MAX_HEAD_BYTES, ServeConfig


def load_member(
    source: str, mode: str = NONE, *, calibration: str | None = None, model_name: str | None = None,
    checkpoint_source: str = "auto", engine: str = DEFAULT_ENGINE, batch: int = ServeConfig.max_batch,
    device: str | None = None, allow_untrained: bool = False,
) -> Network:
    """The network named by ``source`` (checkpoint, run folder or NAME:TAG: :func:`resolve_source`),
    optimised for ``mode`` like ``resnet predict --optimize``, run by ``engine`` (chosen at ``batch`` images,
    the server's largest batch, when not ours), through :func:`~resnet.inference.prepare.prepare`: int8 and
    engines other than ours take their images as predict does, ``calibration`` (an image file or a folder of
    them) when given, else the training data the run recorded; never requests. ``device``: where an eager
    network runs (``cpu``, ``cuda``, ``auto``; the optimised modes run on the CPU)."""
    network = resolve_source(source, model_name=model_name, checkpoint_source=checkpoint_source,
                             allow_untrained=allow_untrained).place(device)
    return prepare(network, mode, engine=engine, calibration=calibration, batch=batch)


def uvicorn_config(app: Any, host: str, port: int, *, http: str = HTTP_IMPLEMENTATIONS[0], loop: str = EVENT_LOOPS[0],
                   **kwargs: Any) -> Any:
    """uvicorn's settings: ``http`` (h11, or httptools) and ``loop`` (asyncio, or uvloop) through the protocols of
    :mod:`.http` (connections, head and body deadlines, head size from the app's :class:`ServeConfig`), keep-alive
    from it too, no access log (the metrics count requests), repeated log lines rate-limited (:mod:`.lograte`);
    ``kwargs`` go to ``uvicorn.Config`` as they are.

    uvicorn's own ``limit_concurrency`` is not used: it counts idle connections as well as requests, so a flood
    of idle connections would turn every real request away, and its 503 carries no ``Retry-After``."""
    import uvicorn

    if http not in HTTP_IMPLEMENTATIONS or loop not in EVENT_LOOPS:
        raise UsageError(f"`http` is one of {', '.join(HTTP_IMPLEMENTATIONS)} and `loop` one of {', '.join(EVENT_LOOPS)}; "
                         f"got {http!r} and {loop!r}")
    http, loop = implementations(http, loop)
    from .lograte import install

    limits = getattr(getattr(app, "state", None), "config", None) or ServeConfig()
    options = {"log_level": "info", "access_log": False, "timeout_keep_alive": limits.keep_alive_s,
               "h11_max_incomplete_event_size": MAX_HEAD_BYTES, "http": bounded_protocol(http, limits), "loop": loop}
    options.update(kwargs)
    config = uvicorn.Config(app, host=host, port=port, **options)
    install()
    return config


def implementations(http: str, loop: str) -> tuple[str, str]:
    """uvicorn's ``http`` and ``loop`` for ours: ``auto`` is httptools / uvloop where installed, else h11 / asyncio."""
    installed = {name: importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop")}
    http = ("httptools" if installed["httptools"] else "h11") if http == "auto" else http
    loop = ("uvloop" if installed["uvloop"] else "asyncio") if loop == "auto" else loop
    for package in (http, loop):
        if not installed.get(package, True):
            raise UsageError(f"{package} is not installed (pip install -r requirements.txt); or leave `http` and `loop` at auto")
    return http, loop


def serve_forever(app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, **kwargs: Any) -> None:
    """Run until Ctrl-C / SIGTERM (uvicorn shuts down gracefully, finishing requests in flight)."""
    import uvicorn

    try:
        uvicorn.Server(uvicorn_config(app, host, port, **kwargs)).run()
    except OSError as err:
        raise UsageError(f"cannot listen on {host}:{port} ({err.strerror or err}); choose another `port` or `host`") from None


class BackgroundServer:
    """The app on a free loopback port in a daemon thread: ``with BackgroundServer(app) as url: ...``."""

    def __init__(self, app: Any, host: str = DEFAULT_HOST, **kwargs: Any) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, 0))
        self.host, self.port = host, self._socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(app, host, self.port, log_level="warning", **kwargs))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DataError("the test server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()


def bounded_protocol(http: str, config: ServeConfig) -> type:
    """The protocol class for uvicorn's ``http`` setting, holding ``config``'s limits (one class per server)."""
    if http == "httptools":
        from .http_tools import BoundedHttpTools as base  # needs httptools: imported only when asked for
    else:
        from .http import BoundedH11 as base
    return type(base.__name__, (base,), {"limits": config, "heads": {}})
