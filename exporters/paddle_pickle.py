"""Paddle's `.pdparams` pickles read without running code: numpy arrays in builtin containers only.

`paddle.save(layer.state_dict())` pickles a dict of numpy arrays (plus a
'StructuredToParameterName@@' dict of names); nested objects hold each tensor as a
`tuple((name, array))`.  Unpickling calls whatever globals the file names, so
:class:`_ArraysOnly` resolves only the few numpy reconstructors and containers these files
use; any other global (a pickled Layer, `os.system`, ...) stops the load before it is called.
Needs numpy only, not paddle.

Even numpy's own reconstructors are not safe on hostile bytes: a dtype's pickled state carries its
internal flags, and a float dtype flagged as holding Python objects makes numpy treat the array's
bytes as object pointers (fuzzing found it: numpy's "get_clear_loop not set" errors; a copy of such
an array dereferences attacker-chosen addresses).  So the reconstructors resolve to stand-ins
(:class:`_Dtype`, :class:`_Array`) that keep only a plain numeric type, a byte order, a shape and
the raw bytes, and build the array with ``np.frombuffer`` once every size has been checked.
"""

from __future__ import annotations

import collections
import io
import pickle
import pickletools
from pathlib import Path
from typing import Literal, cast

import numpy as np

#: Paddle's table of static parameter names, saved beside the tensors; not a weight.
_NAME_TABLE = "StructuredToParameterName@@"


class CodeInPickle(pickle.UnpicklingError):
    """The pickle names a global outside the allowed set: loading it would run arbitrary code."""


#: Array kinds a weight file may hold: bool, signed and unsigned integers, floats.
_NUMERIC_KINDS = "biuf"


class _Dtype:
    """`numpy.dtype(spec, align, copy)` from a pickle: only the type code and byte order are kept."""

    def __init__(self, spec: object, align: object = False, copy: object = True) -> None:
        if not isinstance(spec, str) or len(spec) > 8:
            raise pickle.UnpicklingError(f"unsupported dtype {spec!r}")
        try:
            dtype = np.dtype(spec)
        except TypeError as exc:
            raise pickle.UnpicklingError(f"unsupported dtype {spec!r}") from exc
        if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
            raise pickle.UnpicklingError(f"dtype {spec!r} is not a numeric type")
        self.dtype = dtype

    def __setstate__(self, state: object) -> None:
        """numpy's state tuple starts (version, byte order, ...); everything after the byte order is dropped."""
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else "|"
        if order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"dtype byte order {order!r}")
        if order in ("<", ">") and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(cast(Literal["<", ">"], order))  # checked just above


class _Array:
    """`numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')` then its `__setstate__`, checked."""

    def __init__(self, cls: object, shape: object = (0,), typecode: object = b"b") -> None:
        if cls is not _NDARRAY:
            raise pickle.UnpicklingError("only numpy.ndarray may be reconstructed")
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("malformed array state")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes | bytearray) or not isinstance(shape, tuple) \
                or not all(isinstance(side, int) and not isinstance(side, bool) and side >= 0 for side in shape):
            raise pickle.UnpicklingError("malformed array state")
        count = int(np.prod(shape, dtype=object))
        if count * dtype.dtype.itemsize != len(raw):
            raise pickle.UnpicklingError(f"array of shape {shape} and dtype {dtype.dtype} needs "
                                         f"{count * dtype.dtype.itemsize} bytes, the file has {len(raw)}")
        flat = np.frombuffer(bytes(raw), dtype=dtype.dtype)
        self.array = flat.reshape(shape, order="F" if fortran else "C").copy()


def _scalar(dtype: object, raw: object = b"") -> np.generic:
    """`numpy.core.multiarray.scalar(dtype, bytes)`: one number of a plain numeric type."""
    if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes) or len(raw) != dtype.dtype.itemsize:
        raise pickle.UnpicklingError("malformed numpy scalar")
    return np.frombuffer(raw, dtype=dtype.dtype)[0]


#: Stands for the class `numpy.ndarray` that `_reconstruct` receives.
_NDARRAY = object()

#: (module, name) -> what it resolves to.  numpy 2 pickles `numpy._core`, numpy 1 `numpy.core`.
_ALLOWED = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _Array for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _scalar for core in ("core", "_core")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
    ("builtins", "tuple"): tuple,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise CodeInPickle(f"{module}.{name}") from None


def _tensors(value):
    """The stand-ins replaced by what they stand for, and Paddle's `(name, array)` tensor tuples by their
    arrays, through dicts, lists and tuples (one walk, children first); Paddle's name table is dropped."""
    if isinstance(value, _Array):
        if value.array is None:
            raise pickle.UnpicklingError("an array without its data")
        return value.array
    if isinstance(value, _Dtype):
        return value.dtype
    if isinstance(value, dict):
        resolved = {key: _tensors(item) for key, item in value.items()}  # the name table too: it must be sound
        return {key: item for key, item in resolved.items() if key != _NAME_TABLE}
    if isinstance(value, list | tuple):
        items = type(value)(_tensors(item) for item in value)
        if isinstance(items, tuple) and len(items) == 2 and isinstance(items[0], str) \
                and isinstance(items[1], np.ndarray):
            return items[1]
        return items
    return value


def load_arrays(path: Path, trusted: bool = False):
    """The unpickled contents of a Paddle pickle, tensors as numpy arrays.

    Untrusted, raises CodeInPickle when the file needs any other global; `trusted` unpickles
    it as it is, running whatever it calls.  Raises pickle.UnpicklingError (or whatever error
    its bytes provoke) when the file is no pickle.
    """
    data = path.read_bytes()
    if trusted:
        return _tensors(pickle.Unpickler(io.BytesIO(data)).load())
    _check_opcodes(data)
    return _tensors(_ArraysOnly(io.BytesIO(data)).load())


def _check_opcodes(data: bytes) -> None:
    """Walk the opcodes in pure Python first: every declared length must fit in the file.

    CPython's C unpickler trusts a BYTEARRAY8's 8-byte length: it allocates it before reading, and on
    the short read frees the bytearray with a buffer still exported (it prints a SystemError)."""
    try:
        for _ in pickletools.genops(io.BytesIO(data)):
            pass
    except ValueError as exc:
        raise pickle.UnpicklingError(f"malformed pickle: {exc}") from exc
