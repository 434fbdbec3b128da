"""The Open Inference Protocol (KServe v2) over REST, as far as verifier speaks it: pure functions, no I/O.

Triton, KServe and MLServer all implement this protocol, so one small client reaches them all.  Verifier
uses three calls (the transport is :mod:`verifier.remote.endpoint`):

- ``GET  /v2/health/ready``: the server is up;
- ``GET  /v2/models/NAME``: the model's metadata, whose ``inputs`` / ``outputs`` give each tensor's name,
  ``datatype`` and ``shape`` (``-1`` for a free dimension): :func:`parse_metadata`;
- ``POST /v2/models/NAME/infer``: tensors as JSON objects (name, shape, datatype, ``data`` as a flat
  row-major list): :func:`infer_request` and :func:`output_array`.

Everything the server sends is untrusted: a document that is not the JSON the protocol describes, a
tensor whose data do not fill its shape, non-numeric or non-finite values are refused here with an
:class:`~verifier.errors.EndpointError` naming what was wrong, never passed on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np

from verifier.errors import EndpointError

#: Datatypes verifier sends images as (JSON numbers either way; the server casts).
FLOAT_TYPES = ("FP16", "FP32", "FP64")
#: Datatypes an output may come back as (a [0, 255] model may well answer UINT8).
NUMERIC_TYPES = (*FLOAT_TYPES, "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the metadata declares it; None in `shape` is a free dimension (-1)."""

    name: str
    datatype: str
    shape: tuple[int | None, ...] | None  # None: the metadata gives no shape

    def describe(self) -> str:
        """'name FP32 [-1, 3, -1, -1]', as the metadata wrote it."""
        shape = "?" if self.shape is None else str([-1 if d is None else d for d in self.shape])
        return f"'{self.name}' {self.datatype} {shape}"


@dataclass(frozen=True)
class ModelMetadata:
    """What ``GET /v2/models/NAME`` says about a model."""

    name: str
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def clean(text: str, limit: int = 200) -> str:
    """Server-provided text made safe for a one-line message: control characters folded, length capped."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_json(body: bytes, what: str) -> object:
    """The JSON document in `body`; anything else is an EndpointError naming `what` it should have been."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        start = clean(body[:60].decode("utf-8", "replace"), 60)
        raise EndpointError(f"{what} is not JSON ({type(exc).__name__}; it starts {start!r})") from None


def _field(document: object, key: str, kind: type | tuple[type, ...], what: str):
    if not isinstance(document, dict) or not isinstance(document.get(key), kind):
        raise EndpointError(f"{what} has no valid '{key}'")
    return document[key]


def _dims(value: object, what: str) -> tuple[int | None, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= -1
                                              for d in value):
        raise EndpointError(f"{what} has a shape that is not a list of dimensions: {clean(str(value), 80)}")
    return tuple(None if d == -1 else d for d in value)


def _tensor(entry: object, what: str) -> TensorSpec:
    if not isinstance(entry, dict):
        raise EndpointError(f"{what} is not an object")
    name = _field(entry, "name", str, what)
    label = f"{what} '{clean(name, 60)}'"
    shape = entry.get("shape")
    return TensorSpec(name=name, datatype=_field(entry, "datatype", str, label),
                      shape=None if shape is None else _dims(shape, label))


def parse_metadata(document: object) -> ModelMetadata:
    """The model metadata document, checked."""
    what = "the model metadata"
    if not isinstance(document, dict):
        raise EndpointError(f"{what} is not a JSON object")
    inputs, outputs = document.get("inputs", []), document.get("outputs", [])
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise EndpointError(f"{what} is not a KServe v2 metadata object ('inputs' and 'outputs' must be lists)")
    return ModelMetadata(name=str(document.get("name", "")), platform=str(document.get("platform", "")),
                         inputs=tuple(_tensor(entry, f"{what}'s input") for entry in inputs),
                         outputs=tuple(_tensor(entry, f"{what}'s output") for entry in outputs))


def infer_request(tensor: TensorSpec, array: np.ndarray, output: str | None = None) -> bytes:
    """The JSON body of an inference request sending `array` as `tensor` (asking for `output` by name when
    the metadata named it).  float32 values print as the shortest decimal that reads back to the same float,
    so the server receives the probe bit for bit."""
    document: dict = {"inputs": [{"name": tensor.name, "shape": list(array.shape), "datatype": tensor.datatype,
                                  "data": np.asarray(array, np.float32).ravel().tolist()}]}
    if output:
        document["outputs"] = [{"name": output}]
    return json.dumps(document, separators=(",", ":")).encode()


def output_array(document: object, name: str | None) -> np.ndarray:
    """The output tensor `name` (the only one when None) of an inference response, as float64, checked: a
    numeric datatype, a shape its data fill exactly, and finite values."""
    what = "the inference response"
    outputs = _field(document, "outputs", list, what)
    if name is not None:
        chosen = [entry for entry in outputs if isinstance(entry, dict) and entry.get("name") == name]
        if not chosen:
            raise EndpointError(f"{what} has no output '{clean(name, 60)}'")
    elif len(outputs) != 1:
        raise EndpointError(f"{what} has {len(outputs)} outputs; verifier compares exactly one image output")
    else:
        chosen = outputs
    entry = chosen[0]
    label = f"{what}'s output '{clean(str(_field(entry, 'name', str, what)), 60)}'"
    datatype = _field(entry, "datatype", str, label)
    if datatype not in NUMERIC_TYPES:
        raise EndpointError(f"{label} has datatype {clean(datatype, 20)}; expected one of {', '.join(NUMERIC_TYPES)}")
    declared = _dims(_field(entry, "shape", list, label), label)
    shape = tuple(d for d in declared if d is not None)
    if len(shape) != len(declared):
        raise EndpointError(f"{label} has a free dimension (-1) in its shape")
    if "data" not in entry:
        raise EndpointError(f"{label} has no 'data' (binary tensor data is not supported: ask for JSON)")
    try:
        data = np.asarray(entry["data"], dtype=np.float64).ravel()
    except (TypeError, ValueError, OverflowError):
        raise EndpointError(f"{label} has data that are not a list of numbers") from None
    expected = math.prod(shape)
    if data.size != expected:
        raise EndpointError(f"{label} has {data.size} values for shape {list(shape)} ({expected} values)")
    if not np.isfinite(data).all():
        raise EndpointError(f"{label} contains non-finite values (NaN or Inf)")
    return data.reshape(shape)
