"""verifier.toml: a bare `verifier audit` takes owners, suspects, outputs and policy from it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from audit_samples import SETTINGS
from click.testing import CliRunner

from verifier import config
from verifier.cli import main
from verifier.errors import InputError


def _toml(**tables: str) -> str:
    return "\n".join(f"{header}\n{body}" for header, body in tables.items())


def test_bare_audit_reads_verifier_toml(audited, trained_models: dict[str, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch):
    """One owner given as a fingerprint file, one made from its model on first use; outputs and gate from the file."""
    (tmp_path / "fp").mkdir()
    shutil.copy(audited.owners["owner"], tmp_path / "fp" / "ours.vfp")
    (tmp_path / "vendor").mkdir()
    shutil.copy(audited.folder / "copy.onnx", tmp_path / "vendor" / "copy.onnx")
    shutil.copy(trained_models["ref_0"], tmp_path / "vendor" / "unrelated.onnx")
    references = ", ".join(f'"{trained_models[name]}"' for name in ("ref_0", "ref_1", "ref_2"))
    options = "\n".join(f"{key} = {value}" for key, value in SETTINGS.items())
    (tmp_path / "verifier.toml").write_text(
        '[audit]\nsuspects = ["vendor"]\nfail_on = ["independent"]\njson = "out/audit.json"\n'
        f'html = "out/audit.html"\ncache = "cache"\njobs = 1\n\n[[owners]]\nfingerprint = "fp/ours.vfp"\n\n'
        f'[[owners]]\nfingerprint = "fp/theirs.vfp"\nmodel = "{trained_models["independent"]}"\n'
        f"references = [{references}]\n{options}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["audit"])
    assert (tmp_path / "fp" / "theirs.vfp").is_file()  # made from the model on first use
    results = json.loads((tmp_path / "out" / "audit.json").read_text())
    verdicts = {entry["name"]: (entry["verdict"], entry["best_owner"]) for entry in results["suspects"]}
    assert verdicts["copy.onnx"] == ("derived", "ours")
    assert verdicts["unrelated.onnx"][0] == "independent"
    assert (tmp_path / "out" / "audit.html").is_file() and (tmp_path / "cache" / "evidence").is_dir()
    assert result.exit_code == 1 and results["gate"]["fail_on"] == ["independent"]  # one is not ours
    assert results["gate"]["failing"] == ["unrelated.onnx"]


@pytest.mark.parametrize(("text", "message"), [
    (_toml(**{"[audit]": "suspect = ['x']"}), "unknown key(s) suspect in [audit]"),
    (_toml(**{"[[owners]]": "model = 'm.onnx'"}), "needs 'fingerprint'"),
    (_toml(**{"[audit]": "fail_on = ['sometimes']"}), "unknown --fail-on value(s) sometimes"),
    (_toml(**{"[audit]": "jobs = 0"}), "'jobs' must be a positive integer"),
    ("[audit\n", "not valid TOML"),
])
def test_bad_config_is_one_line(tmp_path: Path, text: str, message: str):
    path = tmp_path / "verifier.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        config.load(path)
    result = CliRunner().invoke(main, ["audit", "--config", str(path)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_paths_are_relative_to_the_file(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "verifier.toml"
    path.write_text('[audit]\nsuspects = "models"\n\n[[owners]]\nfingerprint = "a.vfp"\nseeds = 2\n')
    loaded = config.load(path)
    assert loaded.suspects == (tmp_path / "sub" / "models",)
    assert loaded.owners[0].fingerprint == tmp_path / "sub" / "a.vfp" and loaded.owners[0].options == {"seeds": 2}
    assert loaded.fail_on == ("derived", "error")  # the documented default
