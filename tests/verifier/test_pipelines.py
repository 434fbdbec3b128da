"""The pipeline examples run as written: the pre-commit hook and the GitHub Actions step gate model files.

Each runs in a scratch repository laid out like examples/pipeline/verifier.toml expects, with a
`verifier` command on PATH that runs this checkout.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from audit_samples import SAMPLES

from exporters import recognised

pytestmark = [pytest.mark.slow]

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "pipeline"


@pytest.fixture
def repository(audited, trained_models: dict[str, Path], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A repository with verifier.toml, our fingerprint and one independent model; and the environment to run in."""
    repo = tmp_path / "repo"
    (repo / "fingerprints").mkdir(parents=True)
    (repo / "models").mkdir()
    shutil.copy(EXAMPLES / "verifier.toml", repo / "verifier.toml")
    shutil.copy(audited.owners["owner"], repo / "fingerprints" / "ours.vfp")
    shutil.copy(trained_models["ref_1"], repo / "models" / "vendor.onnx")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "verifier").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m verifier "$@"\n')
    (bin_dir / "verifier").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return repo, env


def _run(command: list[str] | str, repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600,
                          shell=isinstance(command, str), executable="/bin/bash" if isinstance(command, str) else None)


def test_pre_commit_hook_gates_the_committed_files(audited, repository):
    repo, env = repository
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    pattern = re.compile(hook["files"])
    for exporter, (name, _) in SAMPLES.items():  # every exporter's files reach the hook
        assert pattern.search(name), f"the hook's files pattern misses {exporter} files ({name})"
    for suffix in re.search(r"\\\.\(([^)]*)\)", hook["files"]).group(1).split("|"):
        assert recognised(Path(f"model.{suffix}")), f".{suffix} is in the hook but no exporter knows it"
    shutil.copy(audited.folder / "copy.onnx", repo / "models" / "ours_renamed.onnx")

    def commit(*files: str) -> subprocess.CompletedProcess:  # what pre-commit runs for the staged files
        staged = [name for name in files if pattern.search(name)]
        return _run([*shlex.split(hook["entry"]), *hook.get("args", []), *staged], repo, env)

    clean = commit("models/vendor.onnx", "README.md")
    assert clean.returncode == 0, clean.stderr
    blocked = commit("models/vendor.onnx", "models/ours_renamed.onnx")
    assert blocked.returncode == 1 and re.search(r"ours_renamed\.onnx .* derived", blocked.stdout), blocked.stdout


def test_github_actions_step_gates_the_models_folder(audited, repository):
    repo, env = repository
    workflow = yaml.safe_load((EXAMPLES / "model-gate.yml").read_text())
    steps = workflow["jobs"]["audit"]["steps"]
    audit = next(step for step in steps if step.get("name") == "Audit the model files")
    kept = next(step for step in steps if step.get("name") == "Keep the report")["with"]["path"].split()
    passed = _run(audit["run"], repo, env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert all((repo / name).is_file() for name in kept)  # the artifact step finds the report
    shutil.copy(audited.folder / "finetuned.onnx", repo / "models" / "tuned.onnx")
    failed = _run(audit["run"], repo, env)
    assert failed.returncode == 1, failed.stdout + failed.stderr  # a non-zero step fails the job
    assert (repo / ".verifier-cache" / "evidence").is_dir()  # what the cache step keeps between runs
