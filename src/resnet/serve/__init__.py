"""``resnet serve``: a network behind HTTP (FastAPI + uvicorn), with dynamic micro-batching.

>>> from resnet.serve import ServeConfig, create_app, load_member, serve_forever
>>> member = load_member("runs/cifar/best.safetensors", mode="fp32")
>>> serve_forever(create_app(member, ServeConfig(max_batch=32), mode="fp32"), port=8000)

Endpoints: ``POST /v1/predict`` (multipart file or raw image bytes; ``?top=K``, ``?cam=true|gradcam|
gradcam++|scorecam``), ``GET /v1/model``, ``GET /healthz``, ``GET /metrics`` (Prometheus) and a page
at ``/``. Bad requests get a 4xx JSON ``{"error": {"code", "message", "status"}}``.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import exports, lazy_attributes
from .config import DEFAULT_HOST, DEFAULT_PORT, ServeConfig

if TYPE_CHECKING:
    from .app import create_app, describe_model
    from .limits import BadRequest
    from .server import BackgroundServer, load_member, serve_forever

__all__ = [
    "BackgroundServer", "BadRequest", "DEFAULT_HOST", "DEFAULT_PORT", "ServeConfig", "create_app", "describe_model",
    "load_member", "serve_forever",
]
# FastAPI and PyTorch are imported on first use, so `resnet --help` stays fast.
__getattr__ = lazy_attributes(__name__, exports({"app": ["create_app", "describe_model"], "limits": ["BadRequest"],
                                                 "server": ["BackgroundServer", "load_member", "serve_forever"]}))
