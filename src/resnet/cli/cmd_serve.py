"""``resnet serve``: a network behind HTTP, with a web page, Prometheus metrics and micro-batching."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from ..utils.modes import OPTIMIZE_MODES
from ..serve.config import DEFAULT_HOST, DEFAULT_PORT, EVENT_LOOPS, HTTP_IMPLEMENTATIONS, MiB, ServeConfig
from .common import add_allow_untrained, add_device, add_engine, add_origin, check_optimize_flags, examples, renamed_flag

_DEFAULTS = ServeConfig()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a network over HTTP (JSON API, web page at /, /metrics)",
        description="Serve SOURCE (run folder, checkpoint file or NAME:TAG of named weights) over HTTP: POST /v1/predict, GET /v1/model, "
        "GET /healthz, GET /metrics and a page at /. Binds to loopback; put a reverse proxy in front to serve others. "
        "--optimize was --mode in earlier versions (still accepted).",
        epilog=examples("resnet serve runs/r20 --port 8000", "resnet serve resnet56:akamaster_cifar10 --optimize int8 --max-batch 64"),
    )
    p.add_argument("source", metavar="SOURCE", help="run folder, checkpoint file or NAME:TAG (as for predict)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--optimize", default="fp32", choices=OPTIMIZE_MODES,
                   help="run through resnet.deploy.optimize (default fp32 on the CPU; none = eager, on --device)")
    renamed_flag(p, "--mode", "optimize", "--optimize", choices=OPTIMIZE_MODES)  # serve's spelling before 0.x
    add_engine(p, "--optimize")
    add_device(p, note="; the CPU with --optimize other than none")
    p.add_argument("--calibration", default=None, metavar="IMAGE|DIR",
                   help="--optimize int8 and --engine other than ours: calibrate and check engines on these images (default: "
                        "the training data the run recorded; never requests)")
    p.add_argument("--model", default=None, help="network name for checkpoints that do not carry one")
    add_origin(p)
    add_allow_untrained(p)
    p.add_argument("--max-batch", type=int, default=_DEFAULTS.max_batch, help=f"images run together at most (default {_DEFAULTS.max_batch})")
    p.add_argument("--max-wait-ms", type=float, default=_DEFAULTS.max_wait_ms,
                   help=f"how long a request waits for others to batch with (default {_DEFAULTS.max_wait_ms:g} ms)")
    p.add_argument("--max-bytes", type=int, default=_DEFAULTS.max_bytes, help=f"largest request body (default {_DEFAULTS.max_bytes // MiB} MiB)")
    p.add_argument("--max-pixels", type=int, default=_DEFAULTS.max_pixels, help=f"largest image, width x height (default {_DEFAULTS.max_pixels:,})")
    p.add_argument("--timeout", type=float, default=_DEFAULTS.timeout_s, help=f"seconds a request may take, upload included (default {_DEFAULTS.timeout_s:g})")
    p.add_argument("--top", type=int, default=_DEFAULTS.top, help=f"classes answered when a request does not say (default {_DEFAULTS.top})")
    p.add_argument("--decode-threads", type=int, default=0, help="threads decoding uploads (default 0: two per core)")
    p.add_argument("--large-pixels", type=int, default=_DEFAULTS.large_pixels,
                   help=f"images decoding to more pixels are decoded one at a time on their own thread (default {_DEFAULTS.large_pixels:,})")
    p.add_argument("--max-connections", type=int, default=_DEFAULTS.max_connections,
                   help=f"open connections at most; past it the oldest one still sending its request head is closed, else 503 "
                        f"(default {_DEFAULTS.max_connections})")
    p.add_argument("--max-in-flight", type=int, default=_DEFAULTS.max_in_flight,
                   help=f"requests handled at once (/healthz, /metrics aside); more get 503 at once (default {_DEFAULTS.max_in_flight})")
    p.add_argument("--head-timeout", type=float, default=_DEFAULTS.head_timeout_s,
                   help=f"seconds a request line and headers may take to arrive, then 408 (default {_DEFAULTS.head_timeout_s:g})")
    p.add_argument("--keep-alive", type=float, default=_DEFAULTS.keep_alive_s,
                   help=f"seconds an idle keep-alive connection stays open (default {_DEFAULTS.keep_alive_s:g})")
    p.add_argument("--retry-after", type=int, default=_DEFAULTS.retry_after_s,
                   help=f"seconds a 503 tells clients to wait (Retry-After; default {_DEFAULTS.retry_after_s})")
    p.add_argument("--strict", action="store_true",
                   help="refuse damaged images (decoded only with recovery, e.g. corrupt JPEG data, truncated files) with 422; "
                        "by default they are answered with a \"damaged\" field")
    p.add_argument("--allow-scorecam", action="store_true", help="accept cam=scorecam (slow: one forward pass per channel, blocking the batch)")
    p.add_argument("--http", default=HTTP_IMPLEMENTATIONS[0], choices=HTTP_IMPLEMENTATIONS,
                   help="HTTP parser (default auto: httptools where installed, else h11; either bounds request heads to 64 KiB)")
    p.add_argument("--loop", default=EVENT_LOOPS[0], choices=EVENT_LOOPS,
                   help="event loop (default auto: uvloop where installed, else asyncio)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default info)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference.prepare import device_for
    from ..serve import create_app, load_member, serve_forever
    from . import build_parser
    from .options import as_flags, flag_names

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {args.port}")
    try:
        config = ServeConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_bytes=args.max_bytes,
                             max_pixels=args.max_pixels, timeout_s=args.timeout, top=args.top,
                             decode_threads=args.decode_threads, allow_scorecam=args.allow_scorecam,
                             max_connections=args.max_connections, max_in_flight=args.max_in_flight,
                             head_timeout_s=args.head_timeout, keep_alive_s=args.keep_alive, retry_after_s=args.retry_after,
                             strict=args.strict, large_pixels=args.large_pixels)
    except UsageError as err:
        import re

        flag = {"timeout_s": "--timeout", "max_queue": "max_queue", "head_timeout_s": "--head-timeout",
                "keep_alive_s": "--keep-alive", "retry_after_s": "--retry-after"}
        message = re.sub(r"\b([a-z_]+)=", lambda m: flag.get(m.group(1), "--" + m.group(1).replace("_", "-")) + "=", str(err))
        raise UsageError(message) from None
    check_optimize_flags(args.optimize, args.engine, args.calibration)
    member = load_member(args.source, args.optimize, calibration=args.calibration, model_name=args.model,
                         checkpoint_source=args.checkpoint_source, engine=args.engine, batch=config.max_batch,
                         device=device_for(args.device, args.optimize), allow_untrained=args.allow_untrained)
    names = flag_names(build_parser(), args)  # error replies name this command's flags, as before
    app = create_app(member, config, mode=args.optimize, wording=lambda text: as_flags(text, names))
    engine = member.metadata.get("engine", "pytorch eager")
    print(f"resnet serve: {member.model_name} ({member.name}, optimize {args.optimize} on {engine}) on http://{args.host}:{args.port}/ "
          "(Ctrl-C stops)", file=sys.stderr, flush=True)
    serve_forever(app, args.host, args.port, http=args.http, loop=args.loop, log_level=args.log_level)
    return 0
