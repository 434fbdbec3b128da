"""What an audit needs from the exporters, as an interface the API fills in.

Suspects come in every format an exporter reads, but no layer below the API imports an exporter (they import
whole frameworks, and the layers must stay framework-free): the API passes the audit a :class:`Converter`
backed by the ``exporters`` package, and workers (local processes, Ray tasks) receive it with the rest of their
context, so an implementation must pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Converter(Protocol):
    """Recognises model files and turns them into ONNX."""

    def recognised(self, path: Path) -> bool:
        """Whether some exporter reads this file or folder (a folder can be a model: a SavedModel)."""
        ...

    def format(self, path: Path) -> str:
        """The name of the exporter that reads `path` (``onnx`` for ONNX files); a VerifierError when none does."""
        ...

    def convert(self, path: Path, format: str, target: Path) -> dict:
        """Export `path` with the exporter `format` to the ONNX file `target`; the exporter's record (versions,
        the equivalence check) as JSON-ready data."""
        ...
