"""Reading the official CIFAR pickles without letting them run code.

The archives from https://www.cs.toronto.edu/~kriz/ are Python 2 pickles of dicts holding numpy uint8
arrays, lists of ints and strings. ``pickle.load`` would import and call whatever a tampered file names,
so this unpickler resolves only the handful of numpy callables those files need and refuses the rest.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable

import numpy as np

from ..errors import DataError

# ndarray.__reduce__ hands back numpy's own reconstructor whatever its module is called in this
# numpy version (numpy.core.multiarray in 1.x, numpy._core.multiarray in 2.x).
_RECONSTRUCT = np.zeros(1).__reduce__()[0]


def _dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(obj, align, copy)
    if dtype.hasobject:
        # Object arrays would let the pickle smuggle arbitrary objects back in.
        raise pickle.UnpicklingError("object arrays are not allowed")
    return dtype


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1").
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin1")


def _frombuffer(buf: bytes, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    return np.frombuffer(buf, dtype=_dtype(dtype)).reshape(shape, order=order).copy()


class _Guarded:
    """A callable the pickle may call but not modify: BUILD on a plain function would ``setattr`` on it."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise pickle.UnpicklingError("modifying an allowed global is not allowed")

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("modifying an allowed global is not allowed")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _Guarded(_RECONSTRUCT),
    ("numpy._core.multiarray", "_reconstruct"): _Guarded(_RECONSTRUCT),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _Guarded(_dtype),
    ("numpy.core.numeric", "_frombuffer"): _Guarded(_frombuffer),
    ("numpy._core.numeric", "_frombuffer"): _Guarded(_frombuffer),
    ("_codecs", "encode"): _Guarded(_latin1_encode),
}

ALLOWED_GLOBALS: frozenset[str] = frozenset(f"{module}.{name}" for module, name in _ALLOWED)


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED_GLOBALS`; anything else raises ``pickle.UnpicklingError``."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def restricted_loads(data: bytes, *, source: str = "pickle") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; a refused or broken file is a :class:`DataError`.

    ``latin1`` decodes the Python 2 ``str`` objects of the official files (numpy's recommended setting).
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise DataError(
            f"{source} is not a plain CIFAR data file ({err}); it was refused unread, fetch the official archive again"
        ) from None
