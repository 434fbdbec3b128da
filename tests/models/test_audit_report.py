"""The README's zoo audit commands (models.audit_report.COMMANDS) run, with a quick fingerprint, and give a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import audit_report

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_readme_audit_commands_on_the_zoo(tmp_path: Path):
    """As in the README, but with 1 critical image of 32x32 so that the test takes seconds, not minutes."""
    code = audit_report.run(tmp_path, ["--seeds", "1", "--size", "32"])
    results = json.loads((tmp_path / "audit.json").read_text())
    verdicts = {entry["name"]: entry["verdict"] for entry in results["suspects"]}
    manifest = json.loads((audit_report.ROOT / "models" / "zoo" / "manifest.json").read_text())
    assert set(verdicts) == {Path(m["id"]).name + ".onnx" for m in manifest["models"]
                             if m["id"].startswith("dncnn6_gray_s50/")}
    for name in ("source.onnx", "rewrite_ortbasic.onnx", "rewrite_range255.onnx", "quantize_fp16.onnx"):
        assert verdicts[name] == "derived", name  # the same function as the owner's
    assert code == results["gate"]["exit_code"] == 1  # the default gate fails on derived models
    if audit_report.chromium() is None:
        pytest.skip("no chromium binary for the screenshot")
    shot = tmp_path / "shot.png"
    audit_report.screenshot(tmp_path / "audit.html", shot)
    assert shot.read_bytes().startswith(b"\x89PNG")
