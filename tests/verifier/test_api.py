"""The Python API: verifier.fingerprint / verify / audit return typed results and agree with the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import verifier
from verifier.audit import AuditResult
from verifier.verification import Verdict


def test_api_names_are_callable_and_still_the_submodules():
    """`verifier.fingerprint` and `verifier.audit` are submodules too: both uses must keep working."""
    import types
    from unittest import mock

    import verifier.audit as audit_module
    import verifier.fingerprint as fingerprint_module

    assert audit_module is verifier.audit and fingerprint_module is verifier.fingerprint
    assert isinstance(verifier.fingerprint, types.ModuleType) and callable(verifier.fingerprint)
    with mock.patch("verifier.audit.available_cores", return_value=3):  # a dotted path through the module
        assert verifier.audit.available_cores() == 3
    with mock.patch("verifier.api.run", return_value="ran"), mock.patch("verifier.api.load_owners"):
        assert verifier.audit(["a.vfp"], ["models"]) == "ran"  # calling the module calls the API
    code = "import verifier.fingerprint, verifier.cli; import verifier; print(callable(verifier.fingerprint))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


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
