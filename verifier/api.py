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

import contextlib
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from verifier._version import __version__
from verifier.auditing.cache import default_cache_dir
from verifier.auditing.config import OwnerSpec
from verifier.auditing.convert import Converter
from verifier.auditing.discovery import load_owners
from verifier.auditing.results import AuditResult, AuditRow, Engine
from verifier.auditing.runner import run
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
    derives from the fingerprinted owner (``verifier verify``).  With `require_signature` or `trusted_keys`
    (public key files), an unsigned fingerprint, or one signed by another key, is refused before any work."""
    from verifier.method import fingerprint_file

    fp = fingerprint if isinstance(fingerprint, Fingerprint) else fingerprint_file.load(fingerprint)
    _check_signer(fp, fingerprint if not isinstance(fingerprint, Fingerprint) else "fingerprint", require_signature,
                  trusted_keys)
    model = load_any(suspect, layout=layout, value_range=value_range, threads=threads or fp.settings.threads) if (
        isinstance(suspect, str | Path)) else suspect
    return _verify(fp, model, progress=progress)


@dataclass(frozen=True)
class VerifyReport:
    """A verdict with what it was reached on, as ``verifier verify --json`` prints it."""

    verdict: Verdict
    fingerprint: dict  # path, sha256 of the file, sha256 of the owner's model, signer
    suspect: dict  # a file: path, sha256, onnx_sha256; an endpoint: its spec, I/O and the queries it was sent
    unavailable: dict[str, str] = field(default_factory=dict)  # evidence kinds not gathered, and why
    notes: tuple[str, ...] = ()  # what the text output adds below the evidence

    def to_dict(self) -> dict:
        """JSON-ready form: the tool, the inputs, then the verdict's own fields."""
        return {"tool": {"name": "verifier", "version": __version__},
                "inputs": {"fingerprint": self.fingerprint, "suspect": self.suspect},
                **self.verdict.to_dict(), **({"unavailable": self.unavailable} if self.unavailable else {})}


def verify_report(fingerprint_path: str | Path, suspect: str | Path | EndpointSpec, *, layout: Layout | None = None,
                  value_range: tuple[float, float] | None = None, threads: int | None = None,
                  require_signature: bool = False, trusted_keys: Sequence[str | Path] = (),
                  progress: Progress | None = None) -> VerifyReport:
    """``verifier verify`` without the printing: :func:`verify` on a fingerprint file and a model file (any
    format) or an endpoint, with the inputs described by their digests (and an endpoint's queries counted)."""
    from verifier.graph.onnx_file import sha256_file, source_digest
    from verifier.method import fingerprint_file
    from verifier.remote.endpoint import NO_WEIGHTS, connect

    fp = fingerprint_file.load(fingerprint_path)
    _check_signer(fp, fingerprint_path, require_signature, trusted_keys)
    described_fp = {"path": str(fingerprint_path), "sha256": sha256_file(Path(fingerprint_path)),
                    "owner_sha256": fp.owner["sha256"], "signer": fp.signer}
    if isinstance(suspect, EndpointSpec):
        endpoint = connect(suspect, progress=progress)
        endpoint.expect(len(fp.residuals))
        result = _verify(fp, endpoint, progress=progress)
        return VerifyReport(result, described_fp,
                            {"endpoint": suspect.to_dict(), "io": endpoint.io.to_dict(), **endpoint.usage.to_dict()},
                            {"weights": NO_WEIGHTS}, (f"   {'weights':<9} not available: {NO_WEIGHTS}",
                                                      f"endpoint {suspect.url}: {endpoint.usage.describe()}"))
    model = load_any(suspect, layout=layout, value_range=value_range, threads=threads or fp.settings.threads)
    result = _verify(fp, model, progress=progress)
    assert model.source is not None  # load_any records the file it read
    return VerifyReport(result, described_fp, {"path": str(suspect), "sha256": source_digest(Path(suspect)),
                                               "onnx_sha256": model.source.sha256})


def _check_signer(fp: Fingerprint, where: str | Path, require_signature: bool,
                  trusted_keys: Sequence[str | Path]) -> None:
    """Refuse `fp` (read from `where`) unless it is signed, by one of `trusted_keys` when any are given; nothing
    is asked of it when neither is."""
    if require_signature or trusted_keys:
        from verifier.method import signing

        signing.require(fp.signer, [Path(key) for key in trusted_keys], where)


def load_any(path: str | Path, *, layout: Layout | None = None, value_range: tuple[float, float] | None = None,
             threads: int | None = None) -> Model:
    """A model file in any format an exporter reads (as ``verifier audit`` takes them), exported to ONNX first
    when it is not ONNX already (into a temporary folder, removed once the model is loaded; no pickled code
    runs).  `layout` and `value_range` override what the file says."""
    import tempfile

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    converter = _converter()
    framework = converter.format(path)
    if framework == "onnx":
        return load_model(path, layout=layout, value_range=value_range, threads=threads)
    with tempfile.TemporaryDirectory(prefix="verifier-export-") as folder:
        target = Path(folder) / f"{path.name}.onnx"
        converter.convert(path, framework, target)
        return load_model(target, layout=layout, value_range=value_range, threads=threads)


def _converter() -> Converter:
    """The exporters, as the audit and :func:`load_any` use them (imported here, the one layer that may)."""
    from exporters.converter import Exporters

    return Exporters()


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
               Path(cache) if cache is not None else default_cache_dir(), _converter(), jobs=jobs, threads=threads,
               on_row=on_row, endpoints=endpoints, engine=engine, address=address)


@dataclass(frozen=True)
class AuditRequest:
    """Everything ``verifier audit`` takes.  What is not set here comes from the config file (`config`, or
    ./verifier.toml when present), then from the defaults; suspects given here replace the file's suspects and
    its endpoints alike."""

    owners: tuple[Path, ...] = ()  # fingerprint files; none: the config's [[owners]], made first when missing
    suspects: tuple[Path, ...] = ()
    config: Path | None = None
    json: Path | None = None  # where to write the JSON results
    html: Path | None = None  # where to write the HTML report
    fail_on: tuple[str, ...] = ()  # the gate (see verifier.auditing.results.FAIL_ON)
    jobs: int | None = None
    threads: int | None = None
    cache: Path | None = None
    no_cache: bool = False  # a temporary cache, removed afterwards
    engine: Engine | None = None
    address: str | None = None
    require_signature: bool = False
    trusted_keys: tuple[Path, ...] = ()


@dataclass(frozen=True)
class AuditReport:
    """An audit's result, the gate it was held to, and the JSON document (as written to ``--json``/``-o``)."""

    result: AuditResult
    fail_on: tuple[str, ...]
    document: dict

    @property
    def exit_code(self) -> int:
        """0: the gate passes; 1: a suspect fails it; 2: a suspect that fails it could not be audited."""
        return int(self.document["gate"]["exit_code"])


def run_audit(request: AuditRequest, *, progress: Progress | None = None,
              on_start: Callable[[int], None] | None = None,
              on_row: Callable[[AuditRow, int, int], None] | None = None) -> AuditReport:
    """``verifier audit`` without the printing: the config read and merged, owners made and their signatures
    checked, outputs checked before any work and written after it, a temporary cache when asked.

    `progress` hears about fingerprints being made; `on_start(total)` and `on_row(row, done, total)` about the
    suspects.
    """
    import tempfile

    from verifier.auditing import config, results_json
    from verifier.auditing.results import check_fail_on
    from verifier.auditing.runner import check_engine
    from verifier.output import check_output, write_atomic

    config_path = request.config
    if config_path is None and Path(config.DEFAULT_NAME).is_file():
        config_path = Path(config.DEFAULT_NAME)
    configured = config.load(config_path) if config_path else config.AuditConfig()
    fail_on = check_fail_on(request.fail_on or configured.fail_on)
    engine = request.engine or configured.engine
    address = request.address or (configured.address if engine == "ray" else None)  # local drops the file's
    check_engine(engine, address)
    owner_files = list(request.owners) or [_ensure_owner(spec, progress) for spec in configured.owners]
    owners = load_owners(owner_files)
    for owner in owners:
        _check_signer(owner.fingerprint, owner.path, request.require_signature, request.trusted_keys)
    output, html = request.json or configured.json, request.html or configured.html
    for path in (output, html):
        if path:
            check_output(path)
    with contextlib.ExitStack() as stack:
        cache = (Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="verifier-cache-"))) if request.no_cache
                 else request.cache or configured.cache or default_cache_dir())
        result = run(owners, list(request.suspects) or list(configured.suspects), cache, _converter(),
                     jobs=request.jobs or configured.jobs, threads=request.threads or configured.threads,
                     on_start=on_start, on_row=on_row, endpoints=() if request.suspects else configured.endpoints,
                     engine=engine, address=address)
        # A temporary cache is removed on return: the JSON must not point to it (the HTML, written now, reads it).
        document = results_json.to_dict(dataclasses.replace(result, cache=None) if request.no_cache else result,
                                         fail_on)
        if output:
            write_atomic(output, (json.dumps(document, indent=2) + "\n").encode())
        if html:
            from verifier.auditing.report import render

            write_atomic(html, render(result, fail_on).encode())
    return AuditReport(result, fail_on, document)


def _ensure_owner(spec: OwnerSpec, progress: Progress | None) -> Path:
    """An [[owners]] entry's fingerprint file, made from its model first if it does not exist yet."""
    if not spec.fingerprint.exists() and spec.model is not None:
        if progress:
            progress(f"{spec.fingerprint} does not exist: fingerprinting {spec.model}")
        given = spec.options
        fingerprint(spec.model, spec.references, output=spec.fingerprint, progress=progress,
                    method=given.method or "response", recipe=given.recipe or "fast",
                    seeds=given.seeds or DEFAULT_SEEDS, size=given.size, degradation=given.degradation,
                    sigma=given.sigma, fpr=given.fpr or DEFAULT_FPR, threads=given.threads)
    return spec.fingerprint
