"""The Python API: the CLI's three jobs as functions returning typed results.

    import verifier
    fp = verifier.fingerprint("ours.onnx", references=["independent/"], output="ours.vfp")   # -> Fingerprint
    verdict = verifier.verify("ours.vfp", "suspect.onnx")                                    # -> Verdict
    result = verifier.audit(["ours.vfp"], ["vendor_models/"])                                # -> AuditResult
    if result.exit_code(("derived", "error")): ...

Paths or loaded objects are accepted where it makes sense; errors are
:class:`~verifier.errors.VerifierError` with a one-line message, as on the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from verifier.auditing.audit import AuditResult, AuditRow, Engine, load_owners, run
from verifier.auditing.cache import default_cache_dir
from verifier.errors import InputError, ModelFileError
from verifier.graph.io_spec import Layout
from verifier.graph.model import Model, load_model
from verifier.graph.suspect import Suspect
from verifier.method.behaviour import MethodName
from verifier.method.calibration import DEFAULT_FPR
from verifier.method.degradation import Kind, default_degradation
from verifier.method.fingerprint import DEFAULT_SEEDS, DEFAULT_THREADS, Fingerprint, Settings, create
from verifier.method.inversion import RECIPES, Progress
from verifier.method.references import reference_paths
from verifier.method.verification import Verdict
from verifier.method.verification import verify as _verify
from verifier.remote.endpoint import EndpointSpec

#: Said when the bundled references alone calibrate a fingerprint.
BUNDLED_ONLY = ("calibrating on the bundled reference models only; independently trained models of your own "
                "architecture (--reference) make the false-positive rate hold for same-architecture suspects")


def fingerprint(model: str | Path | Model, references: Sequence[str | Path] = (), *, output: str | Path | None = None,
                method: MethodName = "response", recipe: str = "fast", seeds: int = DEFAULT_SEEDS,
                size: int | None = None, degradation: Kind | None = None, sigma: float | None = None,
                fpr: float = DEFAULT_FPR, layout: Layout | None = None, value_range: tuple[float, float] | None = None,
                threads: int | None = None, progress: Progress | None = None,
                sign: str | Path | None = None) -> Fingerprint:
    """Fingerprint an owner model and calibrate it (``verifier fingerprint``); saved to `output` if given,
    signed with the private key file `sign` if given (see :mod:`verifier.method.signing`).

    `references`: independent ONNX models or folders of them (default: the bundled ones for the task).
    """
    if sign is not None and output is None:
        raise InputError("signing needs an output file")
    threads = threads or DEFAULT_THREADS
    owner = model if isinstance(model, Model) else load_any(model, layout=layout, value_range=value_range,
                                                            threads=threads)
    fixed = (owner.io.height, owner.io.width)
    if size is None and fixed[0] is not None and fixed[0] == fixed[1]:
        # a model made for one square input size is fingerprinted on that canvas (critical images are
        # square; a non-square one is tried at the recipe's size, which works when its graph is fully
        # convolutional, the probes then placed on its canvas)
        size = fixed[0] * owner.io.scale
    if size is None:  # the recipe's size, rounded down to a multiple of the scale (x3 models: 126, not 128)
        size = RECIPES[recipe].size - RECIPES[recipe].size % owner.io.scale
    chosen = dataclasses.replace(RECIPES[recipe], size=size)
    settings = Settings(method=method, recipe=chosen, degradation=default_degradation(owner.io, degradation, sigma),
                        seeds=tuple(range(seeds)), threads=threads)
    paths = reference_paths([Path(path) for path in references], owner.io, settings.degradation)
    if not references and progress:
        progress(BUNDLED_ONLY)
    result = create(owner, [load_model(path, threads=threads) for path in paths], settings, fpr, progress=progress)
    if output is not None:
        from verifier.method import fingerprint_file

        fingerprint_file.save(result, output, sign_with=Path(sign) if sign is not None else None)
    return result


def verify(fingerprint: str | Path | Fingerprint, suspect: str | Path | Suspect, *, layout: Layout | None = None,
           value_range: tuple[float, float] | None = None, threads: int | None = None,
           progress: Progress | None = None, require_signature: bool = False,
           trusted_keys: Sequence[str | Path] = ()) -> Verdict:
    """Decide whether `suspect` (a file in any format an exporter reads, a loaded :class:`Model`, or another
    :class:`~verifier.graph.suspect.Suspect` such as :func:`verifier.remote.endpoint.connect`'s endpoint)
    derives from the fingerprinted owner (``verifier verify``).  With `require_signature` or `trusted_keys` (public key files), an
    unsigned fingerprint, or one signed by another key, is refused before any work."""
    from verifier.method import fingerprint_file, signing

    fp = fingerprint if isinstance(fingerprint, Fingerprint) else fingerprint_file.load(fingerprint)
    if require_signature or trusted_keys:
        signing.require(fp.signer, [Path(key) for key in trusted_keys], fingerprint if not isinstance(
            fingerprint, Fingerprint) else "fingerprint")
    model = load_any(suspect, layout=layout, value_range=value_range, threads=threads or fp.settings.threads) if (
        isinstance(suspect, str | Path)) else suspect
    return _verify(fp, model, progress=progress)


def load_any(path: str | Path, *, layout: Layout | None = None, value_range: tuple[float, float] | None = None,
             threads: int | None = None) -> Model:
    """A model file in any format an exporter reads (as ``verifier audit`` takes them), exported to ONNX first
    when it is not ONNX already (into a temporary folder, removed once the model is loaded; no pickled code
    runs).  `layout` and `value_range` override what the file says."""
    import tempfile

    from exporters import ExportRequest, detect, export
    from exporters.base import quiet_framework

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    exporter = detect(path)
    if exporter.name == "onnx":
        return load_model(path, layout=layout, value_range=value_range, threads=threads)
    with tempfile.TemporaryDirectory(prefix="verifier-export-") as folder:
        target = Path(folder) / f"{path.name}.onnx"
        with quiet_framework():
            export(ExportRequest(source=path, output=target), exporter.name)
        return load_model(target, layout=layout, value_range=value_range, threads=threads)


def audit(owners: Sequence[str | Path], suspects: Sequence[str | Path], *, cache: str | Path | None = None,
          jobs: int | None = None, threads: int | None = None,
          on_row: Callable[[AuditRow, int, int], None] | None = None,
          endpoints: Sequence[EndpointSpec] = (), engine: Engine = "local",
          address: str | None = None) -> AuditResult:
    """Audit suspect files and folders (any supported format) against owner fingerprint files (``verifier audit``).

    `cache`: where exports and suspects' evidence are kept between runs (default ~/.cache/verifier);
    `jobs`, `threads`: worker processes and threads per worker (default: fill the cores);
    `on_row(row, done, total)` is called as each suspect finishes; `endpoints`
    (:meth:`EndpointSpec.parse <verifier.remote.endpoint.EndpointSpec.parse>`) are audited after the files, one
    row each;
    `engine`: ``local`` worker processes, or ``ray`` tasks (the ray extra; `address`: the cluster, default
    $RAY_ADDRESS or a local instance; a Ray connection this process already made is used as it is).
    """
    return run(load_owners([Path(path) for path in owners]), [Path(path) for path in suspects],
               Path(cache) if cache is not None else default_cache_dir(), jobs=jobs, threads=threads, on_row=on_row,
               endpoints=endpoints, engine=engine, address=address)
