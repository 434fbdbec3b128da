"""Reading ONNX files safely.

An auditor receives models from vendors, so the file is untrusted: it may be
truncated, not ONNX at all, or carry external-data references that point outside
its folder (a path-traversal read of arbitrary files).  Everything is checked
before a byte of external data is read.  ONNX is protobuf, so no code runs on load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from verifier.errors import ModelFileError

#: Refuse files larger than this (bytes): a restoration model is far smaller.
MAX_MODEL_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class ModelSource:
    """Where a model came from: path and content digest, for reports and caches."""

    path: Path
    sha256: str


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_onnx(path: str | Path) -> tuple[onnx.ModelProto, ModelSource]:
    """Parse an ONNX file (and its external data) after validating it."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"not a regular file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"model file is empty: {path}")
    if size > MAX_MODEL_BYTES:
        raise ModelFileError(f"model file is larger than {MAX_MODEL_BYTES} bytes: {path}")
    data = path.read_bytes()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise ModelFileError(f"not a valid ONNX file (protobuf parse failed): {path}") from exc
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(f"not an ONNX model (no graph nodes): {path}")
    _load_external_data(model, path.parent.resolve(), path)
    return model, ModelSource(path=path, sha256=hashlib.sha256(data).hexdigest())


def _external_tensors(model: onnx.ModelProto):
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.HasField("t") and attr.t.data_location == onnx.TensorProto.EXTERNAL:
                yield attr.t


def external_data_files(path: Path) -> set[Path]:
    """The files an ONNX file names as its external data (resolved; none if it does not parse).

    Lets a folder scan tell weight files beside a model from models of their own.
    """
    model = onnx.ModelProto()
    try:
        model.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeWarning, ValueError, OSError):
        return set()
    return {(path.parent / entry.value).resolve() for tensor in _external_tensors(model)
            for entry in tensor.external_data if entry.key == "location"}


def _load_external_data(model: onnx.ModelProto, folder: Path, path: Path) -> None:
    tensors = list(_external_tensors(model))
    if not tensors:
        return
    for tensor in tensors:
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise ModelFileError(
                f"external data of tensor '{tensor.name}' points outside the model's folder "
                f"({location!r}): {path}"
            )
        if not target.is_file():
            raise ModelFileError(f"external data file missing for tensor '{tensor.name}': {target}")
        end = int(entries.get("offset", 0) or 0) + int(entries.get("length", 0) or 0)
        if end > target.stat().st_size:
            raise ModelFileError(f"external data of tensor '{tensor.name}' is truncated: {target}")
    try:
        onnx.load_external_data_for_model(model, str(folder))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"could not read external data for {path}: {exc}") from exc
