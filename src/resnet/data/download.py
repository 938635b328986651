"""Fetching files over HTTPS with an MD5 check before they are kept."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError
from ..utils.atomic import atomic_path

_CHUNK = 1 << 20


def md5_of_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def md5_of_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def check_md5(actual: str, expected: str, what: str, fix: str) -> None:
    """Refuse data whose checksum differs: it is corrupt, truncated or not the file we think."""
    if actual != expected:
        raise DataError(f"{what} has MD5 {actual}, expected {expected}: it is corrupt or not the official file; {fix}")


def download(url: str, dest: str | os.PathLike[str], md5: str, *, timeout: float = 60.0) -> Path:
    """Stream ``url`` into ``dest``, which appears only once the whole file has the expected MD5."""
    target = Path(dest)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(url, timeout=timeout) as response:
            with open(tmp, "wb") as out:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            check_md5(digest.hexdigest(), md5, f"the download from {url}", "run again to fetch it again")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise DataError(
            f"cannot download {url}: {err}; check the network connection or fetch it by hand into {target.parent}"
        ) from None
    return target
