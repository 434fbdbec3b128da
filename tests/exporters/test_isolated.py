"""exporters/isolated.py: a reader that hangs, crashes or blows up memory becomes one refusal."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from exporters import isolated
from exporters.base import ExportError
from verifier.cli import main

#: Found by `python tests/fuzz.py exporters` (seed 6): an 8 KB Keras weights file whose `layer_names`
#: attribute makes HDF5's C code loop forever on reading one variable-length string.
LOOPING_H5 = Path(__file__).parent / "data" / "hdf5_string_loop.h5"


def _crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _allocate() -> np.ndarray:
    return np.ones(isolated.MEMORY_BYTES // 8 + 1)


def _buggy() -> None:
    raise KeyError("a bug in a reader")


def _double(values: list[int]) -> dict[str, np.ndarray]:
    return {"doubled": np.asarray(values) * 2}


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolated, "TIMEOUT_S", 5.0)


def test_result_comes_back():
    assert isolated.call(_double, [1, 2], what="x")["doubled"].tolist() == [2, 4]


def test_crash_is_a_refusal():
    with pytest.raises(ExportError, match=r"crashed on this file \(signal 11\)"):
        isolated.call(_crash, what="x")


def test_memory_cap_is_a_refusal():
    with pytest.raises(ExportError, match="needs more than 16 GiB"):
        isolated.call(_allocate, what="x")


def test_a_bug_is_not_hidden_as_a_refusal():
    with pytest.raises(isolated.ReaderBug, match="KeyError: 'a bug in a reader'"):
        isolated.call(_buggy, what="x")


@pytest.mark.skipif(sys.platform != "linux", reason="the loop was found with Linux's HDF5 build")
def test_looping_hdf5_file_is_refused_in_time(short_timeout, tmp_path: Path):
    pytest.importorskip("h5py")
    pytest.importorskip("tensorflow")
    source = tmp_path / "vendor.h5"
    source.write_bytes(LOOPING_H5.read_bytes())
    out = tmp_path / "out.onnx"
    started = time.monotonic()
    result = CliRunner().invoke(main, ["export", str(source), "-o", str(out)])
    assert time.monotonic() - started < 60
    assert result.exit_code == 2, result.output
    assert "took longer than 5 s" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
