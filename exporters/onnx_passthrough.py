"""ONNX in, ONNX out: validate with verifier's safe reader and record provenance."""

from __future__ import annotations

from pathlib import Path

import onnx

from exporters.base import ExportRequest, ExportResult, version, write_metadata
from verifier.graph.io_spec import META_LAYOUT, META_RANGE, parse_range
from verifier.graph.onnx_file import read_onnx


class OnnxExporter:
    """Pass an ONNX file through (external data folded in), adding metadata."""

    name = "onnx"
    extra = "core"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() == ".onnx"

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        model, source = read_onnx(request.source)
        meta = {prop.key: prop.value for prop in model.metadata_props}
        result = ExportResult(
            output=str(request.output),
            framework=model.producer_name or "onnx",
            framework_version=model.producer_version or "unknown",
            exporter="verifier.exporters.onnx",
            exporter_version=version("onnx"),
            source_sha256=source.sha256,
            layout=meta.get(META_LAYOUT, "auto"),
            value_range=parse_range(meta[META_RANGE]) if META_RANGE in meta else (0.0, 1.0),
            max_abs_error=None,
            max_rel_error=None,
        )
        write_metadata(model, result)
        onnx.save(model, str(target))
        return result
