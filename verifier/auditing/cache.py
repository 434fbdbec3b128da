"""The audit's cache: exported ONNX files and suspects' evidence, keyed by content digests and settings.

An audit of a vendor folder is usually repeated (every pipeline run, every new owner
fingerprint).  What costs time is exporting non-ONNX files (a framework import and an
equivalence check, seconds each) and a suspect's evidence (its residuals on an owner's
probes, or its own critical images for the ``paper`` method).  Both are stored here under
a key that hashes everything they depend on (file digest, exporter, settings, thread count,
verifier version and the code and shipped nulls that decide, see :func:`code_digest`), so a changed
file, setting or rule simply misses the cache.  Files are written
atomically, so parallel workers and interrupted runs never leave a half-written entry, and
arrays are read back with ``allow_pickle=False``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from verifier._version import __version__
from verifier.output import atomic_file, write_atomic


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/verifier, else ~/.cache/verifier."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "verifier"


def key(**parts: object) -> str:
    """A stable digest of `parts` (JSON-serialisable), the verifier version and :func:`code_digest`."""
    text = json.dumps({"verifier": __version__, "code": code_digest(), **parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def code_digest() -> str:
    """sha256 over the installed verifier and exporters packages' sources and shipped data (nulls, references).

    The version string alone does not move when the rules do (a remeasured null, a new kind of layer in the
    weight sketch, a fixed exporter): a verdict cached before such a change would be served after it.  Read once
    per process; a few hundred small files.
    """
    return tree_digest(Path(__file__).resolve().parents[2])


def tree_digest(root: Path) -> str:
    """sha256 over the names and contents of the .py, .json and .onnx files of `root`'s verifier and exporters."""
    digest = hashlib.sha256()
    for package in ("verifier", "exporters"):
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".json", ".onnx") and path.is_file():
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class Cache:
    """Exports under ``exports/<key>.onnx`` (with a ``.json`` record), evidence under ``evidence/<key>.npy``,
    verdicts under ``verdicts/<key>.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def export_path(self, entry: str) -> Path:
        """Where the export with this key lives (its record sits beside it as .json)."""
        return self.root / "exports" / f"{entry}.onnx"

    def read_export(self, entry: str) -> dict | None:
        """The export record if the ONNX file is there and still has the digest recorded for it."""
        from verifier.graph.onnx_file import sha256_file

        path = self.export_path(entry)
        try:
            record = json.loads(path.with_suffix(".json").read_text())
            return record if sha256_file(path) == record["onnx_sha256"] else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_export_record(self, entry: str, record: dict) -> None:
        """Record an export whose ONNX file is already at :meth:`export_path`."""
        record_path = self.export_path(entry).with_suffix(".json")
        record_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(record_path, json.dumps(record, indent=2).encode())

    def evidence_path(self, entry: str) -> Path:
        """Where a suspect's evidence with this key lives."""
        return self.root / "evidence" / f"{entry}.npy"

    def read_evidence(self, entry: str) -> np.ndarray | None:
        """Cached evidence, or None when absent or unreadable (it is then recomputed)."""
        try:
            return np.load(self.evidence_path(entry), allow_pickle=False)
        except (OSError, ValueError):
            return None

    def write_evidence(self, entry: str, array: np.ndarray) -> None:
        """Store evidence atomically."""
        path = self.evidence_path(entry)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)

    def verdict_path(self, entry: str) -> Path:
        """Where one owner's verdict on one suspect with this key lives."""
        return self.root / "verdicts" / f"{entry}.json"

    def read_verdict(self, entry: str) -> dict | None:
        """A cached verdict record, or None when absent or unreadable (the pair is then judged again)."""
        try:
            record = json.loads(self.verdict_path(entry).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def write_verdict(self, entry: str, record: dict) -> None:
        """Store a verdict record atomically."""
        path = self.verdict_path(entry)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(record, indent=2).encode())
