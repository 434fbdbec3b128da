"""Choosing the audit engine: the checks that need no Ray instance (and run without the ray extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporters.converter import Exporters
from verifier.auditing.runner import run
from verifier.cli import main
from verifier.errors import InputError


def test_address_needs_the_ray_engine(conv_onnx: Path, tmp_path: Path):
    with pytest.raises(InputError, match="needs --engine ray"):
        run((), [conv_onnx], tmp_path, Exporters(), threads=1, address="auto")
    result = CliRunner().invoke(main, ["audit", "--owner", str(tmp_path / "missing.vfp"), str(conv_onnx),
                                       "--address", "auto"])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        "verifier: error: --address names a Ray cluster: it needs --engine ray"]


def test_ray_engine_without_ray_says_how_to_install_it(conv_onnx: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    with pytest.raises(InputError, match=r"pip install 'verifier\[ray\]'"):
        run((), [conv_onnx], tmp_path, Exporters(), threads=1, engine="ray")


def test_unknown_engine(conv_onnx: Path, tmp_path: Path):
    with pytest.raises(InputError, match="unknown engine 'spark'"):
        run((), [conv_onnx], tmp_path, Exporters(), threads=1, engine="spark")  # type: ignore[arg-type]
    result = CliRunner().invoke(main, ["audit", str(conv_onnx), "--engine", "spark"])
    assert result.exit_code == 2 and "'spark' is not one of 'local', 'ray'" in result.output
