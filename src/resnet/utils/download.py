"""Fetching one file over HTTP, the one implementation (weights in :mod:`resnet.weights.store`, CIFAR archives in
:mod:`resnet.data.cifar`): resume, timeout and retry, checksum, atomic placement.

The bytes go to ``<file>.part`` beside the destination; an interrupted download resumes from there with an HTTP
``Range`` request. Only a complete file whose sha256 starts with the published prefix (or whose MD5 is the published
one) is moved into place (:mod:`resnet.utils.atomic`); a mismatch deletes it and says so. ``torch.hub``'s
``download_url_to_file`` neither resumes nor times out, so it does not fit; Hugging Face hub files go through
``huggingface_hub`` (:mod:`resnet.weights.store`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ResNetError
from .atomic import atomic_path

_CHUNK = 1 << 16
PARTIAL_SUFFIX = ".part"  # <file>.part: the bytes of an unfinished download, beside its destination
_TRUE = ("1", "true", "yes", "on")


class DownloadError(ResNetError):
    """A file could not be fetched or failed its checksum."""


class OfflineError(DownloadError):
    """No network (or offline mode): the message names the URL and what to do instead."""


@dataclass(frozen=True)
class DownloadPolicy:
    timeout: float = 30.0  # seconds without a byte before a try is given up
    retries: int = 3  # further tries after the first
    backoff: float = 1.0  # seconds before the first retry, doubled each time
    progress: bool = True  # a progress bar on a terminal


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` (huggingface_hub's switch) also keeps this package off the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


#: Seconds the one network probe may take, name lookup included: an unreachable host is told within it.
PROBE_TIMEOUT = 2.0
_reachable: dict[tuple[str, int], bool] = {}
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def reachable(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether ``url``'s host (or the proxy the environment names for its scheme) accepts a TCP connection
    within ``timeout`` seconds in all. One probe per host and process: a machine without network is told once,
    at once, instead of after each publisher's retries (27 s of raw "Retrying" lines from the hub, ~11 s of
    retries here)."""
    return reachable_any([url], timeout)


def reachable_any(urls: list[str], timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether any of ``urls`` is :func:`reachable`; the hosts not probed yet are probed side by side, so the
    answer takes at most ``timeout`` seconds however many hosts there are."""
    targets = [_target(url) for url in urls]
    if any(t is None for t in targets):  # file:// and the like need no network
        return True
    fresh = sorted({t for t in targets if t not in _reachable or t[0] in _LOOPBACK})
    answers: dict[tuple[str, int], bool] = {}

    def probe(target: tuple[str, int]) -> None:
        answers[target] = _probe(*target, timeout)

    workers = [threading.Thread(target=probe, args=(t,), name="resnet-network-probes", daemon=True) for t in fresh]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout + 0.5)
    for t in fresh:
        if t[0] not in _LOOPBACK:  # a loopback port answers at once and may open later: not remembered
            _reachable[t] = answers.get(t, False)
    return any(answers.get(t, False) if t in fresh else _reachable[t] for t in targets)  # type: ignore[index]



def _target(url: str) -> tuple[str, int] | None:
    """The (host, port) a connection to ``url`` goes to: its own, or the proxy's the environment names for its
    scheme; ``None`` for a URL that needs no network."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    proxy = urllib.request.getproxies().get(parts.scheme) if not urllib.request.proxy_bypass(parts.hostname or "") else None
    target = urllib.parse.urlsplit(proxy if proxy and "://" in proxy else f"http://{proxy}") if proxy else parts
    return target.hostname or "", target.port or (443 if target.scheme == "https" else 80)


def _probe(host: str, port: int, timeout: float) -> bool:
    """One connection attempt, bounded in a thread (``getaddrinfo`` has no timeout of its own)."""
    answer: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=connect, name="resnet-network-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(answer and answer[0])


def unreachable_reason(*urls: str) -> str:
    """``no network (HOST[, HOST…] did not answer within 2 s)``, for the hosts of ``urls``."""
    hosts = sorted({urllib.parse.urlsplit(url).hostname or url for url in urls})
    return f"no network ({', '.join(hosts)} did not answer within {PROBE_TIMEOUT:g} s)"


def sha256_of(path: str | os.PathLike[str]) -> str:
    return _digest(path, hashlib.sha256())


def md5_of(path: str | os.PathLike[str]) -> str:
    return _digest(path, hashlib.md5(usedforsecurity=False))


def _digest(path: str | os.PathLike[str], digest: Any) -> str:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _Retry(Exception):
    """A failure worth another try (timeout, cut connection, server error)."""


class _NoNetwork(Exception):
    """The host cannot be reached at all."""


def fetch(url: str, dest: Path, *, sha256_prefix: str | None = None, md5: str | None = None,
          policy: DownloadPolicy = DownloadPolicy(), offline: Callable[[str], str] | None = None, elsewhere: str = "") -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), check its sha256 prefix or MD5, move it into place.

    ``offline(why)`` words the error when there is no network (default: fetch it by hand into ``dest``);
    ``elsewhere`` is appended to a "not at that address" error (where else the file may be had)."""
    offline = offline or (lambda why: f"{why}: cannot fetch {url}; download it on a connected machine and put it at {dest}")
    if offline_mode():
        raise OfflineError(offline("offline (HF_HUB_OFFLINE is set)"))
    if not reachable(url):
        raise OfflineError(offline(unreachable_reason(url)))
    part = dest.with_name(dest.name + PARTIAL_SUFFIX)
    part.parent.mkdir(parents=True, exist_ok=True)
    last = ""
    for attempt in range(policy.retries + 1):
        if attempt:
            time.sleep(policy.backoff * 2 ** (attempt - 1))
        try:
            _fetch_once(url, part, policy, elsewhere)
            break
        except _Retry as err:
            last = str(err)
        except _NoNetwork as err:
            last = str(err)
            if attempt == policy.retries:
                raise OfflineError(offline(f"no network ({err})")) from None
    else:
        kept = part.exists() and part.stat().st_size > 0
        if part.exists() and not kept:
            part.unlink()
        raise DownloadError(f"cannot download {url} after {policy.retries + 1} tries ({last})"
                            + (f"; the partial file {part} is kept and the next try resumes it" if kept else ""))
    _check(part, url, sha256_prefix, md5)
    with atomic_path(dest) as tmp:
        os.replace(part, tmp)
    return dest


def _check(part: Path, url: str, sha256_prefix: str | None, md5: str | None) -> None:
    """Delete ``part`` and say so unless it has the published checksum."""
    for kind, expected, actual in (("sha256", sha256_prefix, sha256_of), ("MD5", md5, md5_of)):
        if not expected:
            continue
        got = actual(part)
        if not got.startswith(expected):
            part.unlink()
            raise DownloadError(f"the file from {url} has {kind} {got[:16]}..., expected {expected[:16]}...: it is "
                                "corrupt or not the published file, so it was deleted; run again to fetch it again")


def _fetch_once(url: str, part: Path, policy: DownloadPolicy, elsewhere: str) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "resnet-download/1", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=policy.timeout) as resp:
            resumed = have > 0 and resp.status == 206
            length = resp.headers.get("Content-Length")
            total = (have if resumed else 0) + int(length) if length and length.isdigit() else None
            with open(part, "ab" if resumed else "wb") as fh, _Bar(policy.progress, total, have if resumed else 0, url) as bar:
                while chunk := resp.read(_CHUNK):
                    fh.write(chunk)
                    bar.advance(len(chunk))
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # our partial file is no prefix of theirs: start over
            part.unlink()
            raise _Retry("the server refused to resume; starting over") from None
        if err.code >= 500 or err.code == 429:
            raise _Retry(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"HTTP {err.code} {err.reason} for {url}; the file is not at that address"
                            + (f" ({elsewhere})" if elsewhere else "")) from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise _Retry(f"no data within {policy.timeout:g} s") from None
        if isinstance(reason, (socket.gaierror, ConnectionRefusedError, OSError)):
            raise _NoNetwork(str(reason)) from None
        raise _Retry(str(reason)) from None
    except (socket.timeout, TimeoutError):
        raise _Retry(f"no data within {policy.timeout:g} s") from None
    except (http.client.IncompleteRead, http.client.HTTPException, ConnectionError) as err:
        raise _Retry(f"connection cut ({type(err).__name__}); resuming") from None
    if total is not None and part.stat().st_size < total:
        raise _Retry(f"connection cut at {part.stat().st_size} of {total} bytes; resuming")


class _Bar:
    """rich progress bar on a terminal; silent otherwise (logs, tests)."""

    def __init__(self, enabled: bool, total: int | None, done: int, url: str) -> None:
        self.progress = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

            self.progress = Progress(TextColumn(url.rsplit("/", 1)[-1]), BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self.task = self.progress.add_task("download", total=total, completed=done)

    def __enter__(self) -> "_Bar":
        if self.progress is not None:
            self.progress.start()
        return self

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
