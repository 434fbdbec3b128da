"""The Python API: verifier.fingerprint / verify / audit return typed results and agree with the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import verifier
from verifier.auditing.results import AuditResult
from verifier.method.verification import Verdict


def test_api_names_are_plain_functions_apart_from_the_modules():
    """`verifier.fingerprint` and `verifier.audit` are the API's functions (what type checkers see), whatever
    submodules are imported; the modules behind them have names of their own."""
    import types

    import verifier.auditing.runner as audit_module
    import verifier.method.fingerprint as fingerprint_module
    from verifier import api

    assert isinstance(verifier.fingerprint, types.FunctionType) and verifier.fingerprint is api.fingerprint
    assert isinstance(verifier.audit, types.FunctionType) and verifier.audit is api.audit
    assert verifier.audit is not audit_module and verifier.fingerprint is not fingerprint_module
    code = "import verifier.method.fingerprint, verifier.cli; import verifier; print(verifier.fingerprint.__module__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "verifier.api"


def test_earlier_exports_are_kept():
    assert {"ImageIO", "Model", "Objective", "VerifierError", "__version__", "load_model",
            "model_from_proto"} <= set(verifier.__all__)


def test_verify_and_audit_agree_with_the_cli_audit(audited, tmp_path: Path):
    """Same owner, suspect and thread count: the API's verdict and score equal the audit's, bit for bit."""
    suspect = audited.folder / "finetuned.onnx"
    verdict = verifier.verify(audited.owners["owner"], suspect, threads=1)
    assert isinstance(verdict, Verdict) and verdict.verdict == "derived"
    row = next(entry for entry in audited.results["suspects"] if entry["name"] == "finetuned.onnx")
    assert verdict.score == row["pairs"][0]["score"] and row["pairs"][0]["owner"] == "owner"

    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("copy.onnx", "other_copy.onnx"):
        shutil.copy(audited.folder / name, folder / name)
    seen = []
    result = verifier.audit([audited.owners["owner"], audited.owners["other"]], [folder], cache=audited.cache,
                            jobs=1, on_row=lambda row, done, total: seen.append((row.name, done, total)))
    assert isinstance(result, AuditResult)
    assert [(row.name, row.verdict, row.best.owner) for row in result.rows] == [
        ("copy.onnx", "derived", "owner"), ("other_copy.onnx", "derived", "other")]
    assert seen == [("copy.onnx", 1, 2), ("other_copy.onnx", 2, 2)]  # one worker: in order
    assert result.exit_code(("derived",)) == 1 and result.exit_code(("never",)) == 0


def test_run_audit_and_verify_report_are_the_cli_without_printing(audited, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    """The commands' jobs live in the API: the same JSON as `--json`, the same exit code, outputs written, a
    temporary cache gone and not named in the results."""
    import json

    from click.testing import CliRunner

    from verifier.api import AuditRequest, run_audit, verify_report
    from verifier.cli import main

    monkeypatch.chdir(tmp_path)  # no verifier.toml here
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("copy.onnx", "other_copy.onnx"):  # against "owner": a copy, and an independent model
        shutil.copy(audited.folder / name, folder / name)
    request = AuditRequest(owners=(audited.owners["owner"],), suspects=(folder,), json=tmp_path / "a.json",
                           threads=1, jobs=1, no_cache=True)
    report = run_audit(request)
    assert report.exit_code == 1 and report.fail_on == ("derived", "error")
    assert json.loads((tmp_path / "a.json").read_text()) == report.document
    assert report.document["settings"]["cache"] is None and report.result.cache is not None
    assert not Path(report.result.cache).exists()
    cli = CliRunner().invoke(main, ["audit", "--owner", str(audited.owners["owner"]), str(folder), "--threads", "1",
                                    "--jobs", "1", "--no-cache", "--json"])
    assert cli.exit_code == report.exit_code
    printed = json.loads(cli.stdout)
    assert [(s["name"], s["verdict"], s["score"]) for s in printed["suspects"]] == [
        (s["name"], s["verdict"], s["score"]) for s in report.document["suspects"]]

    suspect = folder / "copy.onnx"
    verified = verify_report(audited.owners["owner"], suspect, threads=1)
    cli = CliRunner().invoke(main, ["verify", str(audited.owners["owner"]), str(suspect), "--threads", "1", "--json"])
    printed = json.loads(cli.stdout)
    expected = verified.to_dict()
    for document in (printed, expected):
        document.pop("seconds")
    assert printed == expected and expected["verdict"] == "derived" and cli.exit_code == 0
    assert expected["inputs"]["suspect"]["sha256"] == expected["inputs"]["suspect"]["onnx_sha256"]
