"""The exporter interface: one request in, one ONNX file and an ExportResult out.

Each framework has one :class:`Exporter`; :func:`exporters.export` picks it from
the file (or `--framework`), runs it into a temporary file beside the target and
only moves it into place once the export, metadata and equivalence check all
succeeded, so a failure never leaves a partial ONNX file behind.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import logging
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import onnx

from verifier.errors import VerifierError
from verifier.graph.io_spec import LAYOUTS, META_LAYOUT, META_RANGE
from verifier.graph.onnx_file import read_onnx, source_digest
from verifier.output import atomic_path

#: Metadata keys every export records (besides layout and range, which `verifier` reads).
META_FRAMEWORK = "verifier.framework"
META_FRAMEWORK_VERSION = "verifier.framework_version"
META_EXPORTER = "verifier.exporter"
META_EXPORTER_VERSION = "verifier.exporter_version"
META_SOURCE_SHA256 = "verifier.source_sha256"
META_ARCHITECTURE = "verifier.architecture"
#: What h5py raises on a malformed HDF5 file (seen by fuzzing: RuntimeError for a bad symbol table
#: node, KeyError for an object of unknown type, TypeError/IndexError for odd shapes and references,
#: OverflowError for a size beyond ssize_t).
HDF5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, OverflowError)
#: What zipfile raises on a malformed archive (fuzzing: NotImplementedError for an unknown compression
#: method, version or flag; RuntimeError for an encrypted member; EOFError for a truncated stream).
ZIP_ERRORS = (OSError, KeyError, ValueError, EOFError, NotImplementedError, RuntimeError, zipfile.BadZipFile,
              zlib.error)
#: Relative error above which an export is rejected by the equivalence check.
CHECK_TOLERANCE = 1e-4


class ExportError(VerifierError):
    """The source cannot be exported (format, architecture, weights, missing framework)."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how; `arch` is 'module:factory' for weights-only files."""

    source: Path
    output: Path
    arch: str | None = None
    arch_kwargs: dict | None = None
    input_shape: tuple[int, int, int] | None = None  # (channels, height, width) for the check
    check: bool = True
    trust_pickle: bool = False


@dataclass(frozen=True)
class ExportResult:
    """What was written, by what, and how closely it reproduces the native model."""

    output: str
    framework: str
    framework_version: str
    exporter: str
    exporter_version: str
    source_sha256: str
    layout: str
    value_range: tuple[float, float]
    max_abs_error: float | None
    max_rel_error: float | None
    architecture: str | None = None  # 'module:factory' used for a weights-only file

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


class Exporter(Protocol):
    """One framework's way from a source file to ONNX."""

    name: str
    extra: str  # the pip extra that installs the framework

    def accepts(self, path: Path) -> bool:
        """Whether `path` looks like this framework's format."""

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        """Write ONNX to `target` (a temporary path) and describe it."""


def require(module: str, extra: str, install: str | None = None):
    """Import a framework module or say how to install it (`install`, else the extra)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = install or f"pip install 'verifier[{extra}]'"
        raise ExportError(f"{module} is not installed; install it with: {hint}") from exc


def version(distribution: str) -> str:
    """Installed version of a distribution, or 'unknown'."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def load_factory(spec: str):
    """Resolve 'package.module:callable' (the user's own architecture code), imported from sys.path (the CLI
    puts the working directory there, as `python -m` would; see verifier.cli.set_up_process)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ExportError(f"--arch must look like 'package.module:factory', got {spec!r}")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ExportError(f"cannot load architecture {spec!r}: {exc}") from exc


def unwrap_state_dict(loaded, path: Path) -> dict:
    """The name -> tensor dict inside common checkpoint layouts, without DataParallel's 'module.' prefix."""
    if isinstance(loaded, dict):
        for key in ("state_dict", "model_state_dict", "params", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not loaded:
        raise ExportError(f"{path} holds no state_dict (found {type(loaded).__name__})")
    if all(key.startswith("module.") for key in loaded):
        loaded = {key.removeprefix("module."): value for key, value in loaded.items()}
    return loaded


def write_metadata(model: onnx.ModelProto, result: ExportResult) -> None:
    """Record provenance, layout and range in the model's metadata_props."""
    values = {
        META_FRAMEWORK: result.framework,
        META_FRAMEWORK_VERSION: result.framework_version,
        META_EXPORTER: result.exporter,
        META_EXPORTER_VERSION: result.exporter_version,
        META_SOURCE_SHA256: result.source_sha256,
        META_RANGE: f"{result.value_range[0]:g},{result.value_range[1]:g}",
    }
    if result.layout in LAYOUTS:  # "auto": leave detection to verifier
        values[META_LAYOUT] = result.layout
    if result.architecture:
        values[META_ARCHITECTURE] = result.architecture
    kept = [prop for prop in model.metadata_props if prop.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in kept}, **values})


@contextlib.contextmanager
def quiet_framework() -> Iterator[None]:
    """Silence a framework's progress prints, warnings and INFO/WARNING logs during an export.

    stdout must stay clean for --json, and stderr for one-line errors.
    """
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def atomic_output(output: Path) -> Iterator[Path]:
    """A temporary path beside `output` (its folder made if missing), moved onto it only if the block succeeds."""
    with atomic_path(output) as temporary:
        yield temporary


def check_equivalence(model: onnx.ModelProto, native_output, onnx_input) -> tuple[float, float]:
    """Run the exported model with onnxruntime on `onnx_input` and compare with the native output.

    Returns (max abs error, max abs error / max |native|); raises above CHECK_TOLERANCE.
    """
    import numpy as np

    from verifier.graph.runtime import make_session

    session = make_session(model.SerializeToString())
    (exported,) = session.run(None, {session.get_inputs()[0].name: onnx_input})
    if exported.shape != native_output.shape:
        raise ExportError(f"exported model's output shape {list(exported.shape)} differs from the native "
                          f"{list(native_output.shape)}")
    abs_error = float(np.abs(exported - native_output).max())
    rel_error = abs_error / max(float(np.abs(native_output).max()), 1e-12)
    if not rel_error <= CHECK_TOLERANCE:
        raise ExportError(f"exported model differs from the native one: max abs error {abs_error:.3g} "
                          f"(relative {rel_error:.3g} > {CHECK_TOLERANCE:g})")
    return abs_error, rel_error


def finish_export(target: Path, request: ExportRequest, native_output, onnx_input, **fields) -> ExportResult:
    """The common end of every framework exporter, once the ONNX file is at `target`.

    Runs the equivalence check (when asked), then writes the provenance metadata into the
    file; `fields` are the ExportResult fields the exporter knows (framework, exporter,
    versions, layout, range, architecture).
    """
    model, _ = read_onnx(target)  # external data folded in, confined to the export's folder
    errors = check_equivalence(model, native_output, onnx_input) if request.check else (None, None)
    result = ExportResult(output=str(request.output), source_sha256=source_digest(request.source),
                          max_abs_error=errors[0], max_rel_error=errors[1], **fields)
    write_metadata(model, result)
    onnx.save(model, str(target))
    return result
