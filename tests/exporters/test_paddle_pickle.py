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


class _ForgedArray:
    """Pickles like `array`, but with its dtype's state (flags included) and raw bytes replaced."""

    def __init__(self, array: np.ndarray, dtype_state: tuple | None = None, raw: bytes | None = None,
                 spec: str | None = None):
        self.array, self.dtype_state, self.raw, self.spec = array, dtype_state, raw, spec

    def __reduce__(self):
        rebuild, args, (version, shape, dtype, fortran, raw) = self.array.__reduce__()
        forged = _ForgedDtype(self.spec or dtype.str, self.dtype_state or dtype.__reduce__()[2])
        return rebuild, args, (version, shape, forged, fortran, raw if self.raw is None else self.raw)


class _ForgedDtype:
    def __init__(self, spec: str, state: tuple):
        self.spec, self.state = spec, state

    def __reduce__(self):
        return np.dtype, (self.spec, False, True), self.state


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


def test_arrays_keep_shape_order_and_byte_order(tmp_path: Path):
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    content = {"c": array, "f": np.asfortranarray(array), "big": array.astype(">f8"), "scalar": np.float32(2.5)}
    loaded = load_arrays(_write(tmp_path / "net.pdparams", content))
    for name in ("c", "f", "big"):
        np.testing.assert_array_equal(loaded[name], array)
    assert loaded["big"].dtype == np.dtype(">f8") and loaded["scalar"] == np.float32(2.5)


def test_a_dtype_flagged_as_holding_objects_gives_a_plain_array(tmp_path: Path):
    """numpy's pickled dtype state carries internal flags: 1 (holds object pointers) made numpy treat the
    floats as pointers (its "get_clear_loop not set" errors); the flags are never taken from the file."""
    array = np.full(4, 1.5e-300)
    for flags in (1, 63):
        forged = _ForgedArray(array, dtype_state=(3, "<", None, None, None, -1, -1, flags))
        loaded = load_arrays(_write(tmp_path / "net.pdparams", {"w": forged}))["w"]
        assert not loaded.dtype.hasobject and loaded.dtype.flags == 0
        np.testing.assert_array_equal(loaded.copy(), array)


@pytest.mark.parametrize(("content", "message"), [
    (np.array([1, "a"], dtype=object), "unsupported dtype|not a numeric type"),
    (np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), "unsupported dtype|not a numeric type"),
    (np.array(["text"]), "not a numeric type"),
    (_ForgedArray(np.zeros((100, 100), np.float32), raw=b"\0" * 16), "needs 40000 bytes, the file has 16"),
    (_ForgedArray(np.zeros(4, np.float32), dtype_state=(3, "?", None, None, None, -1, -1, 0)), "byte order"),
], ids=["object", "structured", "string", "short data", "byte order"])
def test_arrays_that_are_not_plain_numbers_are_refused(tmp_path: Path, content, message: str):
    path = _write(tmp_path / "net.pdparams", {"w": content})
    with pytest.raises(pickle.UnpicklingError, match=message):
        load_arrays(path)
    with pytest.raises(ExportError, match=r"cannot read .* as a Paddle state_dict"):
        export(ExportRequest(source=path, output=tmp_path / "model.onnx"))


def test_a_declared_length_past_the_end_is_refused_before_unpickling(tmp_path: Path, capfd: pytest.CaptureFixture):
    """CPython's unpickler allocates a BYTEARRAY8's declared length, then on the short read prints a
    SystemError (a bytearray freed with a buffer exported): the opcodes are walked in Python first."""
    path = tmp_path / "net.pdparams"
    path.write_bytes(b"\x80\x05\x96" + (2**60).to_bytes(8, "little") + b"abc.")
    with pytest.raises(pickle.UnpicklingError, match="expected 1152921504606846976 bytes"):
        load_arrays(path)
    assert "SystemError" not in capfd.readouterr().err
