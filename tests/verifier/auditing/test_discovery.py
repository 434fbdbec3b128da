"""Catalogue: folder layouts a vendor can hand over, and what the audit makes of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import chain_weights, conv_chain, save
from click.testing import CliRunner

from exporters import recognised
from verifier.auditing.discovery import discover
from verifier.cli import main


@pytest.fixture
def vendor(tmp_path: Path) -> Path:
    folder = tmp_path / "vendor"
    (folder / "sub").mkdir(parents=True)
    save(conv_chain(chain_weights(5, channels=1, depth=3, width=4)), folder / "model.onnx")
    (folder / "loop.onnx").symlink_to(folder / "loop.onnx")  # a file symlink loop
    (folder / "sub" / "up").symlink_to(folder)  # a directory loop back up the tree
    (folder / "sub" / "again.onnx").symlink_to(folder / "model.onnx")  # the same file twice
    (folder / "dangling.onnx").symlink_to(tmp_path / "missing.onnx")
    return folder


def test_each_real_file_once_and_loops_do_not_recurse(vendor: Path):
    suspects, skipped = discover([vendor], recognised)
    names = sorted(name for _, name in suspects)
    assert names == ["dangling.onnx", "loop.onnx", "model.onnx"] and skipped == []


def test_bad_entries_are_error_rows_not_a_lost_audit(vendor: Path, tmp_path: Path):
    refs = [save(conv_chain(chain_weights(seed, channels=1, depth=3, width=4)), tmp_path / f"ref{seed}.onnx")
            for seed in (1, 2, 3)]
    owner = save(conv_chain(chain_weights(0, channels=1, depth=3, width=4)), tmp_path / "owner.onnx")
    runner = CliRunner()
    made = runner.invoke(main, ["fingerprint", str(owner), "-o", str(tmp_path / "owner.vfp"), "--seeds", "1",
                                "--size", "8", "--threads", "1", *[a for r in refs for a in ("--reference", str(r))]])
    assert made.exit_code == 0, made.output
    result = runner.invoke(main, ["audit", "--owner", str(tmp_path / "owner.vfp"), str(vendor), "--jobs", "1",
                                  "--threads", "1", "--no-cache", "--json", "--fail-on", "never"])
    assert result.exit_code == 0, result.output
    rows = {entry["name"]: entry for entry in json.loads(result.stdout)["suspects"]}
    assert sorted(rows) == ["dangling.onnx", "loop.onnx", "model.onnx"]
    assert rows["model.onnx"]["verdict"] == "independent"
    for name in ("dangling.onnx", "loop.onnx"):
        assert rows[name]["verdict"] == "error" and "internal error" not in rows[name]["error"], rows[name]
