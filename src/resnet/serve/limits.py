"""What the server accepts: its limits, and uploads turned into the network's view or a 4xx error.

Every problem with a request is a :class:`BadRequest` carrying the HTTP status, a short code and a
message naming the problem and the fix; the app answers it as JSON and keeps serving.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from torch import Tensor

from ..errors import DataError, UsageError
from ..evaluate.preprocess import Preprocess
from .config import MiB, ServeConfig  # noqa: F401  (re-exported)

class BadRequest(Exception):
    """A request the server refuses: ``status`` (4xx/503), ``code`` (stable, for clients) and ``message``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})  # e.g. Retry-After on a 503, Connection: close on a 413

    def as_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


def check_header(data: bytes, config: ServeConfig, min_side: int | None = None) -> tuple[str, int, int]:
    """Format, and the width and height it will be decoded at, read from the image header (nothing decoded); refuses non-images and
    images that would decode to over ``config.max_pixels`` (decompression bombs: a small file claiming
    gigapixels). A large JPEG counts at the reduced scale it is decoded at for a resize to ``min_side``."""
    from PIL import Image, UnidentifiedImageError

    from ..data.decode import decoded_size

    if not data:
        raise BadRequest(400, "empty", "the request carries no image; send the image file as the body or as a multipart field")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, mode, (width, height) = str(img.format), str(img.mode), img.size
    except Image.DecompressionBombError as err:
        raise BadRequest(413, "too_many_pixels", f"the image is too large to decode safely ({err}); send a smaller image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        head = data[:16].hex(" ")
        raise BadRequest(415, "not_an_image", f"the upload is not an image Pillow can read ({type(err).__name__}; "
                         f"starts with bytes {head}); send a JPEG, PNG, WebP, BMP, GIF or TIFF file") from None
    w, h = decoded_size(fmt, mode, width, height, min_side)
    if w * h > config.max_pixels:
        raise BadRequest(413, "too_many_pixels", f"the image is {width}x{height} = {width * height:,} pixels to decode, over the "
                         f"server's limit of {config.max_pixels:,}; scale it down (or start the server with a larger `max_pixels`)")
    return fmt, w, h


def decode_upload(data: bytes, pre: Preprocess, config: ServeConfig, name: str = "upload", *,
                  header_checked: bool = False) -> tuple[Tensor, str | None]:
    """uint8 ``[C, h, w]``: the upload decoded by the library's one decoder (a large JPEG at reduced scale) and
    cropped as ``predict`` does; and what the decoder said if it was damaged (``config.strict``: refused, 422).
    ``header_checked``: the caller has passed ``data`` through :func:`check_header` already (the app does, to
    answer 4xx before queueing it), so it is not parsed again.

    The decoded ``[H, W, C]`` pixels go to the resize as they are (a channels-last view): the same pixels as
    a ``[C, H, W]`` copy (tested), without the copy, and torch's uint8 antialiased resize runs its fast path on
    them: 500x375 photos, one core, copy 0.8 ms and resize 1.7 ms before, resize 0.5 ms after."""
    from ..data.decode import read_image_checked
    from ..explain import network_view

    if not header_checked:
        check_header(data, config, pre.resize_size)
    try:
        decoded = read_image_checked(data, pre.channels, min_side=pre.resize_size, name=name)
    except DataError as err:
        raise BadRequest(422, "undecodable", str(err)) from None
    if decoded.damaged and config.strict:
        raise BadRequest(422, "damaged", f"image {name} is damaged ({decoded.damaged}); this server refuses damaged images "
                         "(`strict`): send an intact file")
    return network_view(decoded.pixels, pre), decoded.damaged
