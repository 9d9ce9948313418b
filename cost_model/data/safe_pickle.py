"""A restricted unpickler for the public ``.pickle`` latency files.

``pickle.load`` runs whatever callables a file names, so it must never see
data we did not write. The OneProxy files (``latency_data/*.pickle``,
``encode.pickle``) hold plain lists of floats / ints, except the five Eagle
files, whose floats were pickled as NumPy float64 scalars: each one is
``numpy.core.multiarray.scalar(numpy.dtype('f8'), <8 raw bytes>)``
(inspected with ``pickletools``). :class:`RestrictedUnpickler` therefore
refuses every global except those two names, and even those never reach
NumPy's own unpickling code: they resolve to the local shims below, which
accept only fixed-size numeric dtypes and decode the raw bytes with
``numpy.frombuffer``. Nothing is called that the file could steer elsewhere.

Not supported on purpose: ``_codecs.encode`` (protocol-2 bytes, unused by
these files), ``numpy.core.multiarray._reconstruct`` (whole arrays), object
dtypes, persistent ids (tensor storages) and copyreg extension codes (they
also go through :meth:`RestrictedUnpickler.find_class` and are refused).
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from targets.errors import DataError

__all__ = ["RestrictedUnpickler", "load_pickle", "loads_pickle"]

# Plain fixed-size numeric dtypes only: no object, string, void or structured types.
_NUMERIC_CODES = frozenset(
    {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}
)
_BYTE_ORDERS = frozenset({"<", ">", "=", "|"})


class _NumericDType:
    """Stand-in for ``numpy.dtype`` while unpickling: records a numeric type code.

    A pickled dtype is ``REDUCE(numpy.dtype, (code, align, copy))`` followed by
    ``BUILD`` with a state tuple whose second item is the byte order.
    """

    def __init__(self, code: object, align: object = False, copy: object = True) -> None:
        if not isinstance(code, str) or code not in _NUMERIC_CODES:
            raise pickle.UnpicklingError(f"dtype {code!r} is not a plain numeric dtype")
        self.code = code
        self.byte_order = "="

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in _BYTE_ORDERS:
            raise pickle.UnpicklingError(f"unexpected dtype state {state!r}")
        self.byte_order = state[1]

    def to_numpy(self) -> np.dtype:
        order = "=" if self.byte_order == "|" else self.byte_order
        return np.dtype(self.code).newbyteorder(order)


def _numeric_scalar(dtype: object, data: object = None) -> int | float | bool:
    """Stand-in for ``numpy.core.multiarray.scalar``: decode one numeric scalar."""
    if not isinstance(dtype, _NumericDType):
        raise pickle.UnpicklingError("scalar() needs a numeric dtype")
    np_dtype = dtype.to_numpy()
    if not isinstance(data, bytes) or len(data) != np_dtype.itemsize:
        raise pickle.UnpicklingError(
            f"scalar() needs {np_dtype.itemsize} raw bytes, got {type(data).__name__}"
        )
    return np.frombuffer(data, dtype=np_dtype)[0].item()


# NumPy < 2 pickles name ``numpy.core``; NumPy >= 2 writes ``numpy._core``.
_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy", "dtype"): _NumericDType,
    ("numpy.core.multiarray", "scalar"): _numeric_scalar,
    ("numpy._core.multiarray", "scalar"): _numeric_scalar,
}


# What a truncated or hand-crafted pickle can raise from the opcodes we still execute.
_MALFORMED = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves no global except NumPy numeric scalars (to safe shims)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only plain data and NumPy "
                "numeric scalars are allowed"
            ) from None


def loads_pickle(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; errors become ``DataError``."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except _MALFORMED as exc:
        raise DataError(f"{source}: not a plain-data pickle ({exc})") from exc


def load_pickle(path: str | os.PathLike[str]) -> Any:
    """Read a pickle file that must hold plain data (lists, dicts, numbers, strings)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    return loads_pickle(data, source=str(path))
