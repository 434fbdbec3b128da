"""The `verifier` command line.

Every command turns a :class:`~verifier.errors.VerifierError` into one line on
stderr and exit status 2, so scripts and pipelines never see a traceback for bad
input.  Set VERIFIER_DEBUG=1 to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from verifier._version import __version__
from verifier.auditing.results import ENGINES, FAIL_ON, AuditRow
from verifier.errors import GradientUnavailableError, InputError, VerifierError, first_line
from verifier.graph.io_spec import LAYOUTS, parse_range
from verifier.graph.model import load_model
from verifier.method.behaviour import METHODS
from verifier.method.calibration import DEFAULT_FPR
from verifier.method.degradation import KINDS
from verifier.method.evidence import format_p
from verifier.method.fingerprint import DEFAULT_SEEDS
from verifier.method.inversion import RECIPES
from verifier.output import check_output
from verifier.remote.endpoint import DEFAULT_MAX_QUERIES, DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # what click.progressbar returns


class _Group(click.Group):
    """A click group whose commands fail with one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VerifierError as exc:
            click.echo(f"verifier: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("verifier: interrupted", err=True)
            sys.exit(130)  # what shells report for SIGINT; outputs are written atomically, so none is half-written
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            if os.environ.get("VERIFIER_DEBUG"):
                raise
            click.echo(f"verifier: internal error: {type(exc).__name__}: {first_line(exc)} "
                       "(set VERIFIER_DEBUG=1 for a traceback)", err=True)
            sys.exit(2)


#: One runnable example per command, shown under its --help ("\b" keeps click from rewrapping it).
_EXAMPLES = {
    "inspect": "\b\nExample:\n  verifier inspect models/zoo/default.onnx",
    "export": "\b\nExamples:\n  verifier export ../shared/third_party/cszn_KAIR/dncnn_25.pth -o dncnn.onnx\n"
              "  verifier export weights.pth --arch models.torch_archs:DnCNN \\\n"
              "      --arch-kwargs '{\"channels\": 1, \"depth\": 17}' -o model.onnx",
    "fingerprint": "\b\nExample:\n  verifier fingerprint models/zoo/default.onnx -o default.vfp",
    "keygen": "\b\nExample:\n  verifier keygen -o owner.key    # writes owner.key and owner.key.pub",
    "verify": "\b\nExamples:\n  verifier verify default.vfp suspect.onnx\n"
              "  verifier verify default.vfp --endpoint http://localhost:8080 --model denoiser \\\n"
              "      --header 'Authorization: Bearer TOKEN' --max-queries 50",
    "compare": "\b\nExample:\n  verifier compare a.vfp b.vfp",
    "audit": "\b\nExample:\n  verifier audit --owner default.vfp vendor_models/ -o audit.json --html audit.html",
}


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="verifier")
def main() -> None:
    """Fingerprint image-restoration models and verify whether a suspect derives from an owner's model."""
    set_up_process()


def set_up_process() -> None:
    """What this process needs as a command-line tool, set once here rather than by library code: the working
    directory on sys.path, as `python -m` would put it (a user's --arch factory or trusted pickle's classes
    import from there; console scripts leave it out), and TensorFlow's native INFO lines off (they would bury
    tables and one-line errors).  Worker processes set their own (verifier.auditing.worker.prepare_worker_process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _range(_ctx, _param, value: str | None) -> tuple[float, float] | None:
    return None if value is None else parse_range(value)


model_options = [
    click.option("--layout", type=click.Choice(LAYOUTS), default=None,
                 help="Input layout, if detection from the graph is wrong."),
    click.option("--range", "value_range", callback=_range, default=None, metavar="LO,HI",
                 help="Pixel value range the model expects (default 0,1, or the exporter's metadata)."),
    click.option("--threads", type=click.IntRange(1), default=None, help="onnxruntime intra-op threads."),
]


def with_model_options(func):
    """Attach the options every model-loading command shares."""
    for option in reversed(model_options):
        func = option(func)
    return func


@main.command(short_help="Show a model's image I/O, ops and whether gradients work.", epilog=_EXAMPLES["inspect"])
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@with_model_options
def inspect(model_path: str, as_json: bool, layout, value_range, threads) -> None:
    """Describe MODEL: image I/O, opsets, op counts and whether input gradients work.

    Exits 2 when input gradients are unavailable, since such a model cannot be fingerprinted.
    """
    from verifier.graph.inspection import inspect_model

    report = inspect_model(load_model(model_path, layout=layout, value_range=value_range, threads=threads))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.to_text())
    if not report.gradient_available:
        raise GradientUnavailableError(f"input gradients unavailable: {report.gradient_blockers[0]}")


class _ExporterName(click.Choice):
    """The exporters' names, looked up only when parsing or --help needs them: starting the CLI must not
    import `exporters` (and through it the frameworks' converters)."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self) -> tuple[str, ...]:
        from exporters import EXPORTERS

        return tuple(EXPORTERS)

    @choices.setter
    def choices(self, _value: object) -> None:
        """click.Choice assigns its choices in __init__; the property above supersedes them."""


def _input_shape(_ctx, _param, value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        channels, height, width = (int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter("must be C,H,W, e.g. 3,64,64") from None
    return channels, height, width


@main.command(short_help="Export any supported framework file to ONNX.", epilog=_EXAMPLES["export"])
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="ONNX file to write (written only if everything succeeds).")
@click.option("--framework", type=_ExporterName(), default=None,
              help="Exporter to use when the file name does not tell.")
@click.option("--arch", default=None, metavar="MODULE:FACTORY", help="Architecture for weights-only files.")
@click.option("--arch-kwargs", default=None, metavar="JSON", help="Keyword arguments for the factory, as JSON.")
@click.option("--input-shape", callback=_input_shape, default=None, metavar="C,H,W",
              help="Input used by the equivalence check (default: channels from the model, 32x32).")
@click.option("--check/--no-check", default=True, help="Compare the ONNX output with the native framework's.")
@click.option("--trust-pickle", is_flag=True, help="Allow files that execute code when loaded (pickled modules).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def export(source: Path, output: Path, framework, arch, arch_kwargs, input_shape, check, trust_pickle,
           as_json: bool) -> None:
    """Export SOURCE (any supported format: PyTorch, Keras, SavedModel, TFLite, Flax, Paddle, MATLAB, ONNX) to an
    ONNX file verifier can load."""
    from exporters import ExportRequest
    from exporters import export as run_export

    check_output(output)

    try:
        kwargs = json.loads(arch_kwargs) if arch_kwargs else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"--arch-kwargs is not JSON: {exc}") from None
    result = run_export(ExportRequest(source=source, output=output, arch=arch, arch_kwargs=kwargs,
                                      input_shape=input_shape, check=check, trust_pickle=trust_pickle),
                        framework)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        error = "" if result.max_rel_error is None else f", max relative error {result.max_rel_error:.2g}"
        click.echo(f"wrote {result.output} ({result.exporter}{error})")


def _progress(message: str) -> None:
    click.echo(f"verifier: {message}", err=True)


@main.command(short_help="Fingerprint an owner's model (owner side).", epilog=_EXAMPLES["fingerprint"])
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Fingerprint file to write (written only if everything succeeds).")
@click.option("--reference", "references", multiple=True, type=click.Path(path_type=Path),
              help="Independent model (ONNX file or folder of them) for the null distribution; repeatable. "
                   "Include models of your own architecture trained independently (other seeds or data): "
                   "they correlate with yours far more than other architectures do. "
                   "Default: the bundled reference models for the task.")
@click.option("--method", type=click.Choice(METHODS), default="response", show_default=True,
              help="response: suspect's residuals on the owner's probes (black-box); paper: histograms of "
                   "the suspect's own critical images.")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)), default="fast", show_default=True,
              help="Model inversion: fast (L-BFGS-B, 30 gradient evaluations per critical image) or reference "
                   "(Adam, 5000, as in Quan et al.; minutes per image).")
@click.option("--seeds", type=click.IntRange(1), default=DEFAULT_SEEDS, show_default=True,
              help="Number of critical images.")
@click.option("--size", type=click.IntRange(8), default=None, help="Critical-image size (default: the recipe's).")
@click.option("--degradation", "kind", type=click.Choice(KINDS), default=None,
              help="What the model undoes (default: downsample for SR models, else noise).")
@click.option("--sigma", type=float, default=None, help="Noise std in [0,1] units, or blur std in pixels.")
@click.option("--fpr", type=float, default=DEFAULT_FPR, show_default=True, help="Target false-positive rate.")
@click.option("--sign", "sign_key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Sign the fingerprint with this private key (from `verifier keygen`).")
@with_model_options
def fingerprint(model_path: str, output: Path, references, method, recipe, seeds, size, kind, sigma, fpr,
                sign_key, layout, value_range, threads) -> None:
    """Compute MODEL's fingerprint (owner side) and calibrate it against independent models."""
    from verifier.api import fingerprint as make_fingerprint

    check_output(output)
    result = make_fingerprint(model_path, references, output=output, method=method, recipe=recipe, seeds=seeds,
                              size=size, degradation=kind, sigma=sigma, fpr=fpr, layout=layout,
                              value_range=value_range, threads=threads, progress=_progress, sign=sign_key)
    settings = result.settings
    calibration = result.calibration
    images = f"{len(settings.seeds)} critical image" + ("s" if len(settings.seeds) > 1 else "")
    click.echo(f"wrote {output}: {images} ({settings.recipe.name} recipe, "
               f"{settings.degradation.describe()}), {result.cost['evaluations']} gradient evaluations in "
               f"{result.cost['seconds']:.1f} s; behaviour threshold {calibration.threshold:.3f} at FPR "
               f"{calibration.fpr:g} from {len(calibration.null_scores)} reference models; weight sketch of "
               f"{len(result.weights)} layers" + ("" if len(result.weights) else
                                                  " (no convolution qualifies: weight evidence unavailable)"))


def signature_options(command):
    """--require-signature and --trusted-key, for commands that read fingerprints."""
    command = click.option("--trusted-key", "trusted_keys", multiple=True,
                           type=click.Path(dir_okay=False, path_type=Path),
                           help="Public key file (from `verifier keygen`) a fingerprint must be signed with; "
                                "repeatable. Implies --require-signature.")(command)
    return click.option("--require-signature", is_flag=True,
                        help="Refuse fingerprints that are not signed (by any key unless --trusted-key).")(command)


@main.command(short_help="Make a key pair for signing fingerprints.", epilog=_EXAMPLES["keygen"])
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Private key file to write; the public key goes to OUTPUT.pub.")
def keygen(output: Path) -> None:
    """Make an Ed25519 key pair for signing fingerprints (`verifier fingerprint --sign`).

    Keep the private key to yourself; give the .pub file to whoever verifies with --trusted-key.
    """
    from verifier.method import signing

    check_output(output)
    public = signing.generate(output)
    click.echo(f"wrote {output} (private: keep it) and {output}.pub: {public}")


def _header_option(_ctx, _param, value: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from verifier.remote.endpoint import parse_header

    return tuple(parse_header(text) for text in value)


def endpoint_options(command):
    """--endpoint and what questioning one takes (verify)."""
    options = [
        click.option("--endpoint", metavar="URL", default=None,
                     help="Verify a model served behind a KServe v2 / Open Inference Protocol REST endpoint (Triton, "
                          "KServe, MLServer) instead of SUSPECT: the server's base URL with --model, or "
                          "URL/v2/models/NAME. Behaviour evidence only: an endpoint shows no weights."),
        click.option("--model", "endpoint_model", metavar="NAME", default=None, help="The endpoint's model name."),
        click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'", callback=_header_option,
                     help="HTTP header sent with every request to the endpoint (e.g. 'Authorization: Bearer "
                          "TOKEN'); repeatable."),
        click.option("--max-queries", type=click.IntRange(1), default=None,
                     help=f"Inference requests the endpoint may be sent, retries included; verifying refuses "
                          f"to start if it needs more [default: {DEFAULT_MAX_QUERIES}]."),
        click.option("--timeout", type=click.FloatRange(0, 3600, min_open=True), default=None,
                     help=f"Seconds one request to the endpoint may take [default: {DEFAULT_TIMEOUT:g}]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command(short_help="Decide whether one suspect derives from the owner's model.", epilog=_EXAMPLES["verify"])
@click.argument("fingerprint_path", metavar="FP", type=click.Path(dir_okay=False, path_type=str))
@click.argument("suspect_path", metavar="[SUSPECT]", type=click.Path(path_type=str), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout and nothing else there.")
@endpoint_options
@signature_options
@with_model_options
def verify(fingerprint_path: str, suspect_path: str | None, as_json: bool, endpoint: str | None, endpoint_model,
           headers, max_queries, timeout, require_signature: bool, trusted_keys, layout, value_range,
           threads) -> None:
    """Decide whether SUSPECT (or the model behind --endpoint) derives from the model fingerprinted in FP.

    SUSPECT may be in any format `verifier export` reads (it is exported first).  Evidence:
    SUSPECT's weights (lineage) and its behaviour on the owner's probes.  Behaviour alone never
    says derived: strong models of one task behave alike.  An --endpoint shows only its outputs,
    so its verdict rests on behaviour alone (at most similar); every query it is sent is counted.

    Exit status: 0 derived, 1 independent, 3 similar behaviour but lineage not shown, 2 error.
    """
    from verifier.api import verify_report
    from verifier.remote.endpoint import EndpointSpec

    if (suspect_path is None) == (endpoint is None):
        raise InputError("give either SUSPECT or --endpoint URL" + (", not both" if endpoint else ""))
    if endpoint is None and (endpoint_model or headers or max_queries or timeout):
        raise InputError("--model, --header, --max-queries and --timeout go with --endpoint")
    suspect = suspect_path if endpoint is None else EndpointSpec.parse(
        endpoint, endpoint_model, headers=headers, max_queries=max_queries or DEFAULT_MAX_QUERIES,
        timeout=timeout or DEFAULT_TIMEOUT, layout=layout, value_range=value_range)
    assert suspect is not None  # exactly one of the two, checked above
    report = verify_report(fingerprint_path, suspect, layout=layout, value_range=value_range, threads=threads,
                           require_signature=require_signature, trusted_keys=trusted_keys, progress=_progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_verdict(report.verdict)
        for line in report.notes:
            click.echo(line)
    sys.exit(VERDICT_EXIT[report.verdict.verdict])


#: Exit status of `verify` per verdict.
VERDICT_EXIT = {"derived": 0, "independent": 1, "similar": 3}


def _print_verdict(result) -> None:
    """The verdict on one line, then one line per piece of evidence (the deciding one marked)."""
    decided = f"decided by {result.decided_by}" if result.decided_by else "no evidence significant"
    click.echo(f"{result.verdict} ({result.meaning}): p-value {format_p(result.p_value)}, {decided}, "
               f"FPR {result.fpr:g}, {result.seconds:.1f} s")
    for piece in result.evidence:
        mark = "*" if piece.kind == result.decided_by else " "
        detail = f", {piece.detail}" if piece.detail else ""
        click.echo(f" {mark} {piece.kind:<9} score {piece.score:.3f}, threshold {piece.threshold:.3f}, "
                   f"p-value {format_p(piece.p_value)} ({piece.method}{detail})")



@main.command(short_help="Compare two fingerprints' critical images (no models).", epilog=_EXAMPLES["compare"])
@click.argument("first", metavar="FP_A", type=click.Path(dir_okay=False, path_type=str))
@click.argument("second", metavar="FP_B", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def compare(first: str, second: str, as_json: bool) -> None:
    """Compare the critical images of two fingerprints (no models needed).

    Decides from the weight sketches (both fingerprints made from files with convolutions) and,
    when FP_A was made with --method paper, the critical images (exit 0 derived, 1 independent,
    3 similar); with neither, prints the distances and exits 0.
    """
    from verifier.method import fingerprint_file
    from verifier.method.verification import compare as run_compare

    result = run_compare(fingerprint_file.load(first), fingerprint_file.load(second))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(f"histogram distance {result.histogram_distance:.4f}, "
                   f"pixel correlation {result.pixel_correlation:.3f}")
        if result.verdict is not None:
            _print_verdict(result.verdict)
    if result.verdict is not None:
        sys.exit(VERDICT_EXIT[result.verdict.verdict])


@main.command(short_help="Audit folders of suspects against owner fingerprints.", epilog=_EXAMPLES["audit"])
@click.argument("suspects", nargs=-1, type=click.Path(path_type=Path))
@click.option("--owner", "owners", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Owner fingerprint file (from `verifier fingerprint`); repeatable.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Config file with owners, suspects and policy (default: ./verifier.toml when present).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout (the table goes to stderr).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON results to this file.")
@click.option("--html", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a self-contained HTML report to this file.")
@click.option("--fail-on", multiple=True, type=click.Choice(FAIL_ON),
              help="Verdicts that fail the run (exit 1; 2 for errors); repeatable. Default: derived and error.")
@click.option("--jobs", type=click.IntRange(1), default=None, help="Worker processes (default: cores // threads).")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Threads per worker (default: the fingerprints' recorded count).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache of exports and suspects' evidence (default: ~/.cache/verifier).")
@click.option("--no-cache", is_flag=True, help="Use a temporary cache, removed afterwards.")
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="Where suspects run: local worker processes (default) or Ray tasks (the ray extra).")
@click.option("--address", default=None,
              help="Ray cluster to join with --engine ray (auto, HOST:PORT, ray://HOST:10001; "
                   "default $RAY_ADDRESS, else a local Ray instance).")
@signature_options
def audit(suspects, owners, config_path, as_json: bool, output, html, fail_on, jobs, threads, cache, no_cache,
          engine, address, require_signature: bool, trusted_keys) -> None:
    """Audit SUSPECTS (model files or folders, any supported format) against owner fingerprints.

    Inference endpoints are audited too when verifier.toml lists them ([[endpoints]]; behaviour only, every
    query counted) and no SUSPECTS are given on the command line.

    With --engine ray every suspect is a Ray task (--jobs then caps the tasks in flight; default: Ray schedules
    them all as CPUs free up); the rows are the local engine's.

    Prints one row per suspect (format, best-matching owner, score, p-value, verdict, time).
    Exit status: 0 when no suspect fails the --fail-on policy, 1 when one does, 2 when a file that
    fails it could not be audited or the audit could not run.
    """
    from verifier.api import AuditRequest, run_audit
    from verifier.auditing.table import table

    request = AuditRequest(owners=tuple(owners), suspects=tuple(suspects), config=config_path, json=output, html=html,
                           fail_on=tuple(fail_on), jobs=jobs, threads=threads, cache=cache, no_cache=no_cache,
                           engine=engine, address=address, require_signature=require_signature,
                           trusted_keys=tuple(trusted_keys))
    with contextlib.ExitStack() as stack:
        # made once the suspects are counted; closed with the stack, before the table is printed
        bar: list[ProgressBar[AuditRow]] = []

        def start(total: int) -> None:
            if sys.stderr.isatty():  # in a log, click would print a lone "auditing" line instead of a bar
                bar.append(stack.enter_context(click.progressbar(
                    length=total, label="auditing", file=sys.stderr, show_pos=True,
                    item_show_func=lambda row: row.name if row else "")))

        def on_row(row: AuditRow, _done: int, _total: int) -> None:
            if bar:
                bar[0].update(1, row)

        report = run_audit(request, progress=_progress, on_start=start, on_row=on_row)
    click.echo(table(report.result), err=as_json)
    if as_json:
        click.echo(json.dumps(report.document, indent=2))
    sys.exit(report.exit_code)
