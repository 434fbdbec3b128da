"""The `verifier` command line.

Every command turns a :class:`~verifier.errors.VerifierError` into one line on
stderr and exit status 2, so scripts and pipelines never see a traceback for bad
input.  Set VERIFIER_DEBUG=1 to see tracebacks of unexpected errors.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from verifier import __version__
from verifier.errors import GradientUnavailableError, VerifierError, first_line
from verifier.io_spec import LAYOUTS, parse_range
from verifier.model import load_model


class _Group(click.Group):
    """A click group whose commands fail with one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VerifierError as exc:
            click.echo(f"verifier: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            if os.environ.get("VERIFIER_DEBUG"):
                raise
            click.echo(f"verifier: internal error: {type(exc).__name__}: {first_line(exc)} "
                       "(set VERIFIER_DEBUG=1 for a traceback)", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="verifier")
def main() -> None:
    """Fingerprint image-restoration models and verify whether a suspect derives from an owner's model."""


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


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@with_model_options
def inspect(model_path: str, as_json: bool, layout, value_range, threads) -> None:
    """Describe MODEL: image I/O, opsets, op counts and whether input gradients work.

    Exits 2 when input gradients are unavailable, since such a model cannot be fingerprinted.
    """
    from verifier.inspection import inspect_model

    report = inspect_model(load_model(model_path, layout=layout, value_range=value_range, threads=threads))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.to_text())
    if not report.gradient_available:
        raise GradientUnavailableError(f"input gradients unavailable: {report.gradient_blockers[0]}")


def _input_shape(_ctx, _param, value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        channels, height, width = (int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter("must be C,H,W, e.g. 3,64,64") from None
    return channels, height, width


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="ONNX file to write (written only if everything succeeds).")
@click.option("--framework", default=None, help="Exporter to use when the file name does not tell (torch, onnx).")
@click.option("--arch", default=None, metavar="MODULE:FACTORY", help="Architecture for weights-only files.")
@click.option("--arch-kwargs", default=None, metavar="JSON", help="Keyword arguments for the factory, as JSON.")
@click.option("--input-shape", callback=_input_shape, default=None, metavar="C,H,W",
              help="Input used by the equivalence check (default: channels from the model, 32x32).")
@click.option("--check/--no-check", default=True, help="Compare the ONNX output with the native framework's.")
@click.option("--trust-pickle", is_flag=True, help="Allow files that execute code when loaded (pickled modules).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def export(source: Path, output: Path, framework, arch, arch_kwargs, input_shape, check, trust_pickle,
           as_json: bool) -> None:
    """Export SOURCE (PyTorch weights or module, ONNX) to an ONNX file verifier can load."""
    from exporters import ExportRequest
    from exporters import export as run_export

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
