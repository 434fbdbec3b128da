"""Fixtures shared by the verifier tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from builders import conv_model, save


@pytest.fixture
def conv_onnx(tmp_path: Path) -> Path:
    """A valid 3-channel NCHW conv model on disk."""
    return save(conv_model(), tmp_path / "conv.onnx")


@dataclass(frozen=True)
class AuditRun:
    """One `verifier audit` of the vendor folder through the CLI, and what it left behind."""

    folder: Path  # the vendor folder
    owners: dict[str, Path]  # fingerprint files by owner name
    exit_code: int
    stdout: str
    results: dict  # the -o JSON
    html: Path
    cache: Path
    seconds: float


@pytest.fixture(scope="session")
def audited(trained_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> AuditRun:
    """The end-to-end audit: two owners, a folder of every supported format, 2 workers x 1 thread."""
    import audit_samples
    from click.testing import CliRunner

    from verifier.cli import main

    work = tmp_path_factory.mktemp("audit")
    folder = audit_samples.make_vendor_folder(trained_models, work / "vendor")
    owners = audit_samples.make_owners(trained_models, work)
    args = ["audit", "--owner", str(owners["owner"]), "--owner", str(owners["other"]), str(folder),
            "--jobs", "2", "--threads", "1", "--cache", str(work / "cache"), "-o", str(work / "results.json"),
            "--html", str(work / "report.html")]
    started = time.perf_counter()
    result = CliRunner().invoke(main, args)
    seconds = time.perf_counter() - started
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return AuditRun(folder, owners, result.exit_code, result.stdout, json.loads((work / "results.json").read_text()),
                    work / "report.html", work / "cache", seconds)
