"""``resnet serve``: a network behind HTTP (FastAPI + uvicorn), with dynamic micro-batching.

>>> from resnet.serve import ServeConfig, create_app, load_member, serve_forever
>>> member = load_member("runs/cifar/best.safetensors", mode="fp32")
>>> serve_forever(create_app(member, ServeConfig(max_batch=32), mode="fp32"), port=8000)

Endpoints: ``POST /v1/predict`` (multipart file or raw image bytes; ``?top=K``, ``?cam=true|gradcam|
gradcam++|scorecam``), ``GET /v1/model``, ``GET /healthz``, ``GET /metrics`` (Prometheus) and a page
at ``/``. Bad requests get a 4xx JSON ``{"error": {"code", "message", "status"}}``.
"""

from .app import create_app, describe_model
from .limits import BadRequest, ServeConfig
from .server import DEFAULT_HOST, DEFAULT_PORT, BackgroundServer, load_member, serve_forever

__all__ = [
    "BackgroundServer", "BadRequest", "DEFAULT_HOST", "DEFAULT_PORT", "ServeConfig", "create_app", "describe_model",
    "load_member", "serve_forever",
]
