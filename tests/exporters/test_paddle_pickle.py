"""Paddle pickles are read without running code: arrays come back, anything else is refused.

Needs numpy only (no paddle): the files are written here the way paddle.save writes them.
"""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from exporters import ExportError, ExportRequest, export
from exporters.paddle_pickle import CodeInPickle, load_arrays


class _PaddleTensor:
    """Pickles as paddle.save pickles a tensor inside a nested object: tuple((name, array))."""

    def __init__(self, name: str, array: np.ndarray):
        self.name, self.array = name, array

    def __reduce__(self):
        return tuple, ((self.name, self.array),)


class _Shell:
    """Pickles as a call of os.system: loading the file would run `command`."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _write(path: Path, content) -> Path:
    path.write_bytes(pickle.dumps(content, protocol=4))
    return path


def test_state_dict_arrays_come_back_without_paddle_s_name_table(tmp_path: Path):
    weights = {"conv.weight": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3), "bn._mean": np.zeros(1, np.float32)}
    names = {"StructuredToParameterName@@": {"conv.weight": "conv2d_0.w_0"}}
    path = _write(tmp_path / "net.pdparams", {**weights, **names})
    loaded = load_arrays(path)
    assert loaded.keys() == weights.keys()
    for name, array in weights.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_nested_tensors_are_unwrapped(tmp_path: Path):
    array = np.ones((2, 3), np.float16)
    content = {"model": collections.OrderedDict(w=_PaddleTensor("linear_0.w_0", array)), "epoch": 3}
    loaded = load_arrays(_write(tmp_path / "checkpoint.pdparams", content))
    assert loaded["epoch"] == 3
    np.testing.assert_array_equal(loaded["model"]["w"], array)


def test_a_pickle_calling_os_system_is_refused_and_nothing_runs(tmp_path: Path):
    marker = tmp_path / "ran"
    path = _write(tmp_path / "evil.pdparams", {"conv.weight": np.ones(3, np.float32), "x": _Shell(f"touch {marker}")})
    with pytest.raises(CodeInPickle, match="system"):
        load_arrays(path)
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=r"pickle that runs code.*system"):
        export(ExportRequest(source=path, output=out))
    assert not marker.exists() and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["evil.pdparams"]


def test_trusted_pickles_are_unpickled_as_they_are(tmp_path: Path):
    marker = tmp_path / "ran"
    load_arrays(_write(tmp_path / "evil.pdparams", _Shell(f"touch {marker}")), trusted=True)
    assert marker.exists()
