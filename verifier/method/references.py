"""Find the independent reference models that calibrate a fingerprint's decision.

Users pass their own (files or folders of ONNX files); otherwise verifier uses
the models bundled in ``verifier/reference_models/<task>/``, trained here by
``python -m models.references`` independently of any model they are used against.
"""

from __future__ import annotations

from pathlib import Path

from verifier.errors import InputError, ModelFileError
from verifier.graph.io_spec import ImageIO
from verifier.method.degradation import Degradation

BUNDLED = Path(__file__).parents[1] / "reference_models"  # data, beside the packages


def task_key(io: ImageIO, degradation: Degradation) -> str:
    """Folder name of the bundled references for a task, e.g. 'noise-c3-x1'."""
    return f"{degradation.kind}-c{io.channels}-x{io.scale}"


def _expand(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.glob("*.onnx"))
    if path.is_file():
        return [path]
    raise ModelFileError(f"{path}: no such reference model or folder")


def reference_paths(given: list[Path], io: ImageIO, degradation: Degradation) -> list[Path]:
    """The user's references if any, else the bundled ones for the task."""
    if given:
        return [found for path in given for found in _expand(Path(path))]
    folder = BUNDLED / task_key(io, degradation)
    paths = _expand(folder) if folder.is_dir() else []
    if not paths:
        bundled = ", ".join(sorted(p.name for p in BUNDLED.iterdir() if p.is_dir())) if BUNDLED.is_dir() else "none"
        raise InputError(f"no bundled reference models for task '{task_key(io, degradation)}' "
                         f"(bundled: {bundled}); pass independent models with --reference")
    return paths
