"""The exporters as the audit's :class:`~verifier.auditing.convert.Converter` (the API hands this to the audit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporters import ExportRequest, detect, export, recognised
from exporters.base import quiet_framework


@dataclass(frozen=True)
class Exporters:
    """Every exporter of this package behind the audit's Converter interface.  Stateless, so it pickles to local
    workers and Ray tasks."""

    def recognised(self, path: Path) -> bool:
        return recognised(path)

    def format(self, path: Path) -> str:
        return detect(path).name

    def convert(self, path: Path, format: str, target: Path) -> dict:
        with quiet_framework():
            return export(ExportRequest(source=path, output=target), format).to_dict()
