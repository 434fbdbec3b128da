"""Reading ONNX files safely.

An auditor receives models from vendors, so the file is untrusted: it may be
truncated, not ONNX at all, or carry external-data references that point outside
its folder (a path-traversal read of arbitrary files).  Everything is checked
before a byte of external data is read.  ONNX is protobuf, so no code runs on load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from verifier.errors import ModelFileError, first_line

#: Refuse files larger than this (bytes): a restoration model is far smaller.
MAX_MODEL_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class ModelSource:
    """Where a model came from: path and content digest, for reports and caches."""

    path: Path
    sha256: str  # of the file's bytes, then of the external data it names (the file's own sha256 when none)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_digest(path: Path) -> str:
    """sha256 of a model's source file; for a folder (a SavedModel), of its files' relative paths and digests,
    in sorted order, so that any changed, added or removed file changes it."""
    if not path.is_dir():
        return sha256_file(path)
    listing = "".join(f"{item.relative_to(path).as_posix()}\0{sha256_file(item)}\n"
                      for item in sorted(path.rglob("*")) if item.is_file())
    return hashlib.sha256(listing.encode()).hexdigest()


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
    digest = hashlib.sha256(data)
    for external in _load_external_data(model, path.parent.resolve(), path):
        digest.update(external)  # a changed weights file beside an unchanged .onnx is another model
    return model, ModelSource(path=path, sha256=digest.hexdigest())


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[onnx.TensorProto]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        sparse_tensors = [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []
        for sparse in [*sparse_tensors, *attr.sparse_tensors]:
            yield from (sparse.values, sparse.indices)
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for graph in attr.graphs:
            yield from _graph_tensors(graph)


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a model carries, wherever ONNX lets one hide.

    Initializers, sparse initializers (values and indices), node attributes (`value`,
    `sparse_value`, tensor lists), subgraphs of If/Loop/Scan at any depth, local functions and
    training-info graphs: each can name external data, and onnxruntime reads what it names.
    """
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)
    for info in model.training_info:
        yield from _graph_tensors(info.initialization)
        yield from _graph_tensors(info.algorithm)


def _is_external(tensor: onnx.TensorProto) -> bool:
    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


def external_data_files(path: Path) -> set[Path]:
    """The files an ONNX file names as its external data (resolved; none if it does not parse).

    Lets a folder scan tell weight files beside a model from models of their own.
    """
    model = onnx.ModelProto()
    try:
        model.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeWarning, ValueError, OSError):
        return set()
    files = set()
    for tensor in _all_tensors(model):
        for entry in tensor.external_data:
            if entry.key == "location" and entry.value and "\0" not in entry.value:
                files.add((path.parent / entry.value).resolve())
    return files


@dataclass(frozen=True)
class _ExternalRef:
    """Where one tensor's external bytes lie, checked to be inside the model's folder."""

    target: Path
    offset: int
    length: int | None


def _external_ref(tensor: onnx.TensorProto, folder: Path, path: Path) -> _ExternalRef:
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    name = tensor.name or "(unnamed)"
    if not location or "\0" in location or Path(location).is_absolute():
        raise ModelFileError(f"external data of tensor '{name}' points outside the model's folder "
                             f"({location!r}): {path}")
    target = (folder / location).resolve()
    if not target.is_relative_to(folder):
        raise ModelFileError(f"external data of tensor '{name}' points outside the model's folder "
                             f"({location!r}): {path}")
    if not target.is_file():
        raise ModelFileError(f"external data file missing for tensor '{name}': {target}")
    try:
        offset = int(entries.get("offset") or 0)
        length = int(entries["length"]) if entries.get("length") else None
    except ValueError:
        raise ModelFileError(f"external data of tensor '{name}' has a non-numeric offset or length: {path}") from None
    if offset < 0 or (length is not None and length < 0):
        raise ModelFileError(f"external data of tensor '{name}' has a negative offset or length: {path}")
    size = target.stat().st_size
    if offset > size or (length is not None and offset + length > size):
        raise ModelFileError(f"external data of tensor '{name}' is truncated: {target}")
    return _ExternalRef(target, offset, length)


def _load_external_data(model: onnx.ModelProto, folder: Path, path: Path) -> list[bytes]:
    """Read every tensor's external bytes into the model itself; the bytes read, in tensor order.

    Every reference is checked before any byte is read, and the bytes are read here, not by
    onnx or onnxruntime (onnx's loader skips sparse tensors, which onnxruntime then resolves on
    its own), so the model handed on carries no external reference at all.
    """
    tensors = [tensor for tensor in _all_tensors(model) if _is_external(tensor)]
    refs = [_external_ref(tensor, folder, path) for tensor in tensors]
    total = 0
    read = []
    for tensor, ref in zip(tensors, refs, strict=True):
        try:
            with ref.target.open("rb") as handle:
                handle.seek(ref.offset)
                data = handle.read(MAX_MODEL_BYTES - total + 1 if ref.length is None else ref.length)
        except OSError as exc:
            raise ModelFileError(f"could not read external data for {path}: {first_line(exc)}") from exc
        total += len(data)
        if total > MAX_MODEL_BYTES:
            raise ModelFileError(f"external data is larger than {MAX_MODEL_BYTES} bytes: {path}")
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
        read.append(data)
    return read
