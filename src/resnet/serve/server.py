"""Loading what to serve (as ``resnet predict`` does) and running the app under uvicorn, in the
foreground (:func:`serve_forever`) or on a background thread (:class:`BackgroundServer`, for tests
and benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Sequence

from ..errors import DataError, UsageError
from ..utils.modes import NONE
from ..deploy import apply_optimize
from ..evaluate.sources import Member, resolve_source

from .config import DEFAULT_HOST, DEFAULT_PORT


def load_member(
    source: str, mode: str = NONE, *, calibration: str | None = None, model_name: str | None = None,
    checkpoint_source: str = "auto",
) -> Member:
    """The network named by ``source`` (checkpoint, run folder or NAME:TAG: :func:`resolve_source`),
    optimised for ``mode`` like ``resnet predict --optimize``. int8 calibrates as predict does
    (:func:`~resnet.evaluate.calibration.calibration_batch`): on ``calibration`` (an image file or a
    folder of them) when given, else on the training data the run recorded; never on requests."""
    from ..evaluate.calibration import calibration_batch

    member = resolve_source(source, model_name=model_name, checkpoint_source=checkpoint_source)
    batch = calibration_batch(member, calibration) if mode == "int8" else None
    apply_optimize(member, mode, batch)
    return member


def uvicorn_config(app: Any, host: str, port: int, **kwargs: Any) -> Any:
    import uvicorn

    # No access log by default (the metrics count requests); h11 keeps headers small and bounded.
    options = {"log_level": "info", "access_log": False, "timeout_keep_alive": 5, "h11_max_incomplete_event_size": 64 * 1024}
    options.update(kwargs)
    return uvicorn.Config(app, host=host, port=port, **options)


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
