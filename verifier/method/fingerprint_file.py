"""The fingerprint file: a zip of JSON, .npy arrays and PNG previews, never a pickle.

Layout (schema 3)::

    fingerprint.json        settings, owner sha256 and I/O, calibration, cost,
                            the weight sketch's kernel sizes, sha256 of every
                            other member, and `content_sha256` over all of the above
    arrays/<name>.npy       critical images, owner and reference residuals
    weights/layer_<l>.npy   the owner's weight sketch, one array per layer
                            (descriptors, not weights: see verifier.method.weights)
    previews/critical_<k>.png   the critical images, for people

Schema 1 files (before weight sketches) are still read; they give no weight evidence.  Schema 2
files (before linear layers were sketched, kernel sizes only) are read as they are.

Loading checks the schema version, every member's digest and the content
digest, so a truncated or edited file is refused instead of giving a verdict.
Arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from verifier._version import __version__
from verifier.errors import InputError, ModelFileError
from verifier.method import signing
from verifier.method.calibration import Calibration
from verifier.method.fingerprint import Fingerprint, Settings
from verifier.method.fingerprint_schema import MAX_META_BYTES, check_arrays, check_meta, member_limit
from verifier.method.weights import MAX_ROWS, WeightSketch, kernel_elements
from verifier.output import atomic_file
from verifier.png import encode_png

SCHEMA = 3
#: Older schemas this version still reads.
_READABLE = (1, 2, 3)
_META = "fingerprint.json"
_ARRAYS = ("critical", "residuals", "references")
_MAX_SIGNATURE_BYTES = 4096


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _content_digest(meta: dict) -> str:
    body = {key: value for key, value in meta.items() if key != "content_sha256"}
    return _sha256(json.dumps(body, sort_keys=True).encode())


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def save(fingerprint: Fingerprint, path: str | Path, sign_with: Path | None = None) -> None:
    """Write atomically: the file appears complete or not at all; signed with the private key `sign_with`."""
    members = {f"arrays/{name}.npy": _npy(getattr(fingerprint, name)) for name in _ARRAYS}
    for index, layer in enumerate(fingerprint.weights.layers):
        members[f"weights/layer_{index}.npy"] = _npy(layer)
    for index, image in enumerate(fingerprint.critical):
        members[f"previews/critical_{index}.png"] = encode_png(image)
    meta = {
        "schema": SCHEMA,
        "tool": {"name": "verifier", "version": __version__},
        "settings": fingerprint.settings.to_dict(),
        "owner": fingerprint.owner,
        "calibration": fingerprint.calibration.to_dict(),
        "cost": fingerprint.cost,
        "weights": {"kernels": [list(kernel) for kernel in fingerprint.weights.kernels]},
        "members": {name: _sha256(data) for name, data in sorted(members.items())},
    }
    meta["content_sha256"] = _content_digest(meta)
    signature = signing.sign(str(meta["content_sha256"]), sign_with) if sign_with is not None else None
    with atomic_file(path) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_META, json.dumps(meta, indent=2, sort_keys=True))
        for name, data in members.items():
            archive.writestr(name, data)
        if signature is not None:
            archive.writestr(signing.MEMBER, json.dumps(signature))


def _read_member(archive: zipfile.ZipFile, name: str, path: Path, limit: int) -> bytes:
    """A member's bytes, refused before decompression when it claims more than `limit` bytes, and while
    decompressing when it holds more (a zip's stated size can lie)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"{path}: fingerprint file lacks '{name}'") from None
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelFileError(f"{path}: member '{name}' uses an unsupported compression method")
    if info.flag_bits & 0x1:
        raise ModelFileError(f"{path}: member '{name}' is encrypted")
    if info.file_size > limit:
        raise ModelFileError(f"{path}: member '{name}' is larger than its settings allow "
                             f"({info.file_size} > {limit} bytes)")
    with archive.open(info) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"{path}: member '{name}' is larger than its settings allow")
    return data


def _sketch(meta: dict, arrays: dict[str, np.ndarray]) -> WeightSketch:
    kernels = [(int(kh), int(kw)) for kh, kw in meta.get("weights", {"kernels": []})["kernels"]]
    layers = [arrays.get(f"weights/layer_{index}") for index in range(len(kernels))]
    stored = sum(name.startswith("weights/") for name in arrays)
    if stored != len(kernels):
        raise InputError(f"{stored} weight-sketch layers for {len(kernels)} kernel sizes")
    for layer, kernel in zip(layers, kernels, strict=True):
        elements = kernel_elements(kernel)
        if layer is None or layer.ndim != 2 or layer.shape[1] != elements * (elements + 1) // 2 \
                or layer.dtype != np.float32:
            raise InputError("a weight-sketch layer does not match its kernel size")
        if not 1 <= len(layer) <= MAX_ROWS or not np.isfinite(layer).all():
            raise InputError("a weight-sketch layer has no rows, too many, or non-finite values")
    return WeightSketch(tuple(layer for layer in layers if layer is not None), tuple(kernels))


def _parse(meta: dict, arrays: dict[str, np.ndarray]) -> Fingerprint:
    calibration = Calibration.from_dict(meta["calibration"])
    return Fingerprint(settings=Settings.from_dict(meta["settings"]), owner=dict(meta["owner"]),
                       critical=arrays["critical"], residuals=arrays["residuals"], references=arrays["references"],
                       calibration=calibration, cost=dict(meta["cost"]), weights=_sketch(meta, arrays))


def load(path: str | Path) -> Fingerprint:
    """Read and verify a fingerprint file; any defect is a one-line :class:`ModelFileError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such fingerprint file")
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(_read_member(archive, _META, path, MAX_META_BYTES))
            if not isinstance(meta, dict) or "schema" not in meta:
                raise ModelFileError(f"{path}: not a verifier fingerprint")
            if meta["schema"] not in _READABLE:
                raise ModelFileError(f"{path}: fingerprint schema {meta['schema']!r} is not supported "
                                     f"(this verifier reads schema {SCHEMA}; upgrade verifier)")
            if meta.get("content_sha256") != _content_digest(meta):
                raise ModelFileError(f"{path}: fingerprint metadata was edited (content digest mismatch)")
            check_meta(meta)
            unlisted = set(archive.namelist()) - set(meta["members"]) - {_META, signing.MEMBER}
            if unlisted:
                raise ModelFileError(f"{path}: fingerprint holds unlisted member(s) {', '.join(sorted(unlisted))}")
            arrays = {}
            for name, digest in meta["members"].items():
                data = _read_member(archive, name, path, member_limit(meta, name))
                if _sha256(data) != digest:
                    raise ModelFileError(f"{path}: member '{name}' does not match its digest")
                if name.startswith("arrays/"):
                    arrays[name.removeprefix("arrays/").removesuffix(".npy")] = np.load(io.BytesIO(data),
                                                                                        allow_pickle=False)
                elif name.startswith("weights/"):
                    arrays[name.removesuffix(".npy")] = np.load(io.BytesIO(data), allow_pickle=False)
            check_arrays(meta, arrays)
            signer = None
            if signing.MEMBER in archive.namelist():
                signed = json.loads(_read_member(archive, signing.MEMBER, path, _MAX_SIGNATURE_BYTES))
                signer = signing.check(signed, meta["content_sha256"], path)
            return dataclasses.replace(_parse(meta, arrays), signer=signer)
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError) as exc:
        raise ModelFileError(f"{path}: not a readable fingerprint file ({exc})") from exc
    except InputError as exc:
        raise ModelFileError(f"{path}: invalid fingerprint ({exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError, SyntaxError,
            tokenize.TokenError, struct.error, OverflowError, MemoryError, RecursionError, IndexError) as exc:
        raise ModelFileError(f"{path}: malformed fingerprint ({type(exc).__name__}: {exc})") from exc
