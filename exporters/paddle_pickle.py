"""Paddle's `.pdparams` pickles read without running code: numpy arrays in builtin containers only.

`paddle.save(layer.state_dict())` pickles a dict of numpy arrays (plus a
'StructuredToParameterName@@' dict of names); nested objects hold each tensor as a
`tuple((name, array))`.  Unpickling calls whatever globals the file names, so
:class:`_ArraysOnly` resolves only the few numpy reconstructors and containers these files
use; any other global (a pickled Layer, `os.system`, ...) stops the load before it is called.
Needs numpy only, not paddle.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np

#: Paddle's table of static parameter names, saved beside the tensors; not a weight.
_NAME_TABLE = "StructuredToParameterName@@"


class CodeInPickle(pickle.UnpicklingError):
    """The pickle names a global outside the allowed set: loading it would run arbitrary code."""


#: (module, name) -> the object it resolves to.  numpy 2 pickles `numpy._core`, numpy 1 `numpy.core`;
#: the reconstructors are taken from numpy's own reductions so either version's name resolves.
_ALLOWED = {
    **{(f"numpy.{core}.multiarray", "_reconstruct"): np.empty(0).__reduce__()[0] for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): np.float32(0).__reduce__()[0] for core in ("core", "_core")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
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
    """Paddle's `(name, array)` tensor tuples -> arrays, through dicts and lists."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) \
            and isinstance(value[1], np.ndarray):
        return value[1]
    if isinstance(value, dict):
        return {key: _tensors(item) for key, item in value.items() if key != _NAME_TABLE}
    if isinstance(value, list | tuple):
        return type(value)(_tensors(item) for item in value)
    return value


def load_arrays(path: Path, trusted: bool = False):
    """The unpickled contents of a Paddle pickle, tensors as numpy arrays.

    Untrusted, raises CodeInPickle when the file needs any other global; `trusted` unpickles
    it as it is, running whatever it calls.  Raises pickle.UnpicklingError (or whatever error
    its bytes provoke) when the file is no pickle.
    """
    unpickler = pickle.Unpickler if trusted else _ArraysOnly
    return _tensors(unpickler(io.BytesIO(path.read_bytes())).load())
