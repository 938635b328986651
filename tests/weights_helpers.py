"""A loopback HTTP server for download tests, and small synthetic weight entries."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from resnet.data.preprocess import Preprocess
from resnet.utils.download import DownloadPolicy
from resnet.weights.registry import WeightEntry


@dataclass
class Files:
    """What the server holds: path -> bytes, and how each path misbehaves."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    truncate_once: set[str] = field(default_factory=set)  # first GET sends half the body, then hangs up
    slow: dict[str, float] = field(default_factory=dict)  # seconds of silence before the answer
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


def serve(files: Files) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            try:
                self._answer()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout tests)

        def _answer(self) -> None:
            files.requests.append((self.path, self.headers.get("Range")))
            if self.path in files.redirects:
                self.send_response(302)
                self.send_header("Location", files.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path in files.slow:
                time.sleep(files.slow[self.path])
            data = files.blobs.get(self.path)
            if data is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[len("bytes="):].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in files.truncate_once:
                files.truncate_once.discard(self.path)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def state_bytes(model: torch.nn.Module, wrap_akamaster: bool = True) -> bytes:
    """A ``.th`` file as akamaster saved them: ``{"state_dict": {"module.…": …}, "best_prec1": …}``."""
    state = {f"module.{k}".replace("module.fc.", "module.linear."): v for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "best_prec1": 50.0} if wrap_akamaster else model.state_dict(), buffer)
    return buffer.getvalue()


def entry_for(data: bytes, *, model: str = "resnet8", publisher: str = "akamaster", num_classes: int = 10,
              url: str = "http://127.0.0.1:9/x", preprocess: Preprocess | None = None, dataset: str = "cifar10") -> WeightEntry:
    """A registry entry whose published hash is that of ``data``."""
    prefix = hashlib.sha256(data).hexdigest()[:8]
    filename = f"{model}-{prefix}.th"
    return WeightEntry(
        model=model, tag="test", publisher=publisher, url=url.rstrip("/") + "/" + filename, filename=filename,
        preprocess=preprocess or Preprocess((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 32), num_classes=num_classes,
        dataset=dataset, sha256_prefix=prefix, default=True,
    )


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


FAST = DownloadPolicy(timeout=0.5, retries=1, backoff=0.0, progress=False)


def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights cache of the test's own (``RESNET_HOME``, ``TORCH_HOME``), online, without a mirror."""
    home = tmp_path / "home"
    monkeypatch.setenv("RESNET_HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("RESNET_WEIGHTS_MIRROR", raising=False)
    return home


def network_answers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every host answers the network probe (for tests that fake the downloads themselves); returns the probes made."""
    from resnet.utils import download

    probes: list[tuple[str, int]] = []
    monkeypatch.setattr(download, "_reachable", {})
    monkeypatch.setattr(download, "_probe", lambda host, port, timeout: probes.append((host, port)) or True)
    return probes
