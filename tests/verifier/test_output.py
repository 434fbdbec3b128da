"""Catalogue: output paths a hostile or careless caller can give, and what verifier does with each."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from builders import conv_model, save
from click.testing import CliRunner

from verifier.cli import main
from verifier.output import write_atomic


def _fingerprint(model: Path, output: str):
    return CliRunner().invoke(main, ["fingerprint", str(model), "-o", output, "--seeds", "1", "--size", "16",
                                     "--threads", "1", "--reference", str(model.parent / "refs")])


@pytest.fixture
def model(tmp_path: Path) -> Path:
    (tmp_path / "refs").mkdir()
    for seed in (1, 2, 3):
        save(conv_model(seed=seed), tmp_path / "refs" / f"ref{seed}.onnx")
    return save(conv_model(seed=0), tmp_path / "owner.onnx")


def _one_line_exit_2(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "internal error" not in lines[0], result.stderr


def test_fifo_is_refused_not_replaced(model: Path, tmp_path: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    _one_line_exit_2(_fingerprint(model, str(fifo)), "not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_folder_is_refused(model: Path, tmp_path: Path):
    result = _fingerprint(model, str(tmp_path))  # click's own usage error
    assert result.exit_code == 2 and "is a directory" in result.stderr and "internal error" not in result.stderr


def test_unwritable_folder_is_found_before_the_work(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def fail(*_args, **_kwargs):
        raise AssertionError("the fingerprint was computed before the output was checked")

    monkeypatch.setattr("verifier.api.create", fail)
    (tmp_path / "file.txt").write_text("a file, not a folder")
    _one_line_exit_2(_fingerprint(model, str(tmp_path / "file.txt" / "sub" / "owner.vfp")), "cannot write")


def test_missing_folder_is_made(model: Path, tmp_path: Path):
    assert _fingerprint(model, str(tmp_path / "out" / "owner.vfp")).exit_code == 0
    assert (tmp_path / "out" / "owner.vfp").is_file()


def test_symlink_is_written_through(model: Path, tmp_path: Path):
    real = tmp_path / "real.vfp"
    real.write_bytes(b"old")
    link = tmp_path / "link.vfp"
    link.symlink_to(real)
    assert _fingerprint(model, str(link)).exit_code == 0
    assert link.is_symlink() and real.read_bytes()[:2] == b"PK"  # a zip now


def test_files_get_the_users_umask(tmp_path: Path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "out.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o640


def test_ctrl_c_exits_130_and_leaves_nothing(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("zipfile.ZipFile.writestr", interrupted)  # half-way through writing the file
    result = _fingerprint(model, str(tmp_path / "owner.vfp"))
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert not list(tmp_path.glob("*.vfp")) and not list(tmp_path.glob(".*.tmp"))
