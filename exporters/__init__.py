"""Framework -> ONNX.  One exporter per framework behind :func:`export`.

`verifier` never imports this package's frameworks; each exporter imports its
framework only when it runs and names the pip extra that installs it.
"""

from __future__ import annotations

from pathlib import Path

from exporters.base import Exporter, ExportError, ExportRequest, ExportResult, atomic_output
from exporters.flax_exporter import FlaxExporter
from exporters.keras_archive_exporter import KerasArchiveExporter
from exporters.keras_exporter import KerasExporter
from exporters.matlab_exporter import MatlabExporter
from exporters.onnx_passthrough import OnnxExporter
from exporters.paddle_exporter import PaddleExporter
from exporters.savedmodel_exporter import SavedModelExporter
from exporters.tflite_exporter import TFLiteExporter
from exporters.torch_exporter import TorchExporter
from verifier.native import stderr_silenced

EXPORTERS: dict[str, Exporter] = {
    exporter.name: exporter for exporter in (OnnxExporter(), TorchExporter(), KerasExporter(), TFLiteExporter(),
                                            MatlabExporter(), FlaxExporter(), PaddleExporter(), SavedModelExporter(),
                                            KerasArchiveExporter())
}


def detect(path: Path) -> Exporter:
    """The exporter for a file, from its name."""
    for exporter in EXPORTERS.values():
        if exporter.accepts(path):
            return exporter
    raise ExportError(f"unknown model format '{path.suffix or path.name}': {path}; "
                      f"known: {', '.join(sorted(EXPORTERS))} (choose with --framework)")


def recognised(path: Path) -> bool:
    """Whether a folder scan should take `path` as a model: a file or folder (SavedModel) of a known format.

    A Keras JSON config is not one on its own: it is read with the .h5 of the same name.
    """
    return path.suffix.lower() != ".json" and any(exporter.accepts(path) for exporter in EXPORTERS.values())


def export(request: ExportRequest, framework: str | None = None) -> ExportResult:
    """Export `request.source` to `request.output`; nothing is left at the output on failure."""
    if not request.source.exists():
        raise ExportError(f"source not found: {request.source}")
    if framework is not None and framework not in EXPORTERS:
        raise ExportError(f"unknown framework {framework!r}; known: {', '.join(sorted(EXPORTERS))}")
    exporter = EXPORTERS[framework] if framework else detect(request.source)
    with atomic_output(request.output) as target, stderr_silenced():  # frameworks' native log lines
        return exporter.export(request, target)


__all__ = ["EXPORTERS", "ExportError", "ExportRequest", "ExportResult", "detect", "export", "recognised"]
