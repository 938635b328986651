"""What the OpenAPI schema (``GET /openapi.json``) says each endpoint answers: every status the app can
return, with its body. Statuses answered below the app (408 ``head_timeout``, 431 ``head_too_large``, 503
``too_many_connections``: :mod:`.http`) have the same error body and are listed in ``info.description``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


DESCRIPTION = (
    "Every error is JSON {\"error\": {\"code\", \"message\", \"status\"}}. Besides the statuses listed per endpoint, "
    "the connection layer answers 408 `head_timeout` (request line and headers slower than `head_timeout_s`), "
    "431 `head_too_large` (over 64 KiB) and 503 `too_many_connections` (with Retry-After), closing the connection; "
    "unknown paths get 404 `http_404`, other methods 405 `http_405` with Allow."
)


class ErrorDetail(BaseModel):
    code: str  # stable, for clients (docs/guide/serving.md "Limits and bad input")
    message: str  # the problem and the fix, in one line
    status: int


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str  # "ok", or "down" (503)
    queue: int  # images waiting for a batch
    mode: str  # the arithmetic served (none, fp32, bf16, int8)
    engine: str  # what runs it, e.g. "openvino int8" (engine auto's pick) or "pytorch eager"




def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        out["headers"] = headers
    return out


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
BUSY: dict[int | str, dict[str, Any]] = {
    503: _error("`busy`: the server handles its limit of requests at once (`max_in_flight`)", RETRY_AFTER),
}
HEALTH: dict[int | str, dict[str, Any]] = {
    200: {"model": Health, "description": "the batching thread runs"},
    503: {"model": Health, "description": "the batching thread has stopped (`status`: `down`)"},
}
METRICS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text exposition format",
          "content": {"text/plain": {"schema": {"type": "string"}}}},
}
PREDICT: dict[int | str, dict[str, Any]] = {
    200: {"description": "the top classes; `damaged` when the image decoded only with recovery (what the decoder said); "
                         "`cam` when asked for",
          "content": {"application/json": {"schema": {
              "type": "object", "required": ["model", "top", "batch_size"],
              "properties": {
                  "model": {"type": "string"},
                  "top": {"type": "array", "items": {"type": "object", "required": ["class", "index", "prob"], "properties": {
                      "class": {"type": "string"}, "index": {"type": "integer"}, "prob": {"type": "number"}}}},
                  "batch_size": {"type": "integer"},
                  "damaged": {"type": "string"},
                  "cam": {"type": "object", "properties": {"method": {"type": "string"}, "png": {"type": "string"}}},
              }}}}},
    400: _error("`empty`, `no_file`, `bad_multipart`, `bad_top`, `bad_cam`, `scorecam_disabled`, `bad_parameter`"),
    408: _error("`upload_timeout`: the body took longer than `timeout_s`"),
    413: _error("`too_large` (body over `max_bytes`; the connection is closed), `too_many_pixels` (over `max_pixels`)",
                {"Connection": {"description": "close, for `too_large`", "schema": {"type": "string"}}}),
    415: _error("`not_an_image`"),
    422: _error("`undecodable` (corrupt beyond recovery), `damaged` (with `strict`)"),
    503: _error("`busy` (`max_in_flight`), `overloaded` (`max_queue`), `timeout` (no answer within `timeout_s`)", RETRY_AFTER),
}
PREDICT_BODY: dict[str, Any] = {
    "parameters": [  # read by the app itself (serve/app.py, its predict lane), so stated here
        {"name": "top", "in": "query", "required": False, "description": "how many classes to return (default the server's `top`)",
         "schema": {"type": "integer", "minimum": 1}},
        {"name": "cam", "in": "query", "required": False,
         "description": "`true` or an explain method (gradcam, gradcam++, scorecam where allowed): a class activation map too",
         "schema": {"type": "string"}},
    ],
    "requestBody": {
        "description": "the image: a file (JPEG, PNG, WebP, BMP, GIF, TIFF) as the body, or the first file of a multipart form",
        "required": True,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                               "properties": {"file": {"type": "string", "format": "binary"}}}},
        },
    },
}
