"""Detection of a plain onnxruntime installed over the training build."""

from __future__ import annotations

import sys
import types

import pytest

from verifier.errors import RuntimeMissingError
from verifier.graph import runtime


def test_training_build_present():
    runtime.ort.cache_clear()
    assert hasattr(runtime.ort().capi._pybind_state, "GradientGraphBuilder")


def test_plain_onnxruntime_is_detected(monkeypatch: pytest.MonkeyPatch):
    plain = types.ModuleType("onnxruntime.capi._pybind_state")  # what plain onnxruntime offers
    monkeypatch.setitem(sys.modules, "onnxruntime.capi._pybind_state", plain)
    runtime.ort.cache_clear()
    try:
        with pytest.raises(RuntimeMissingError, match="plain onnxruntime was installed over"):
            runtime.ort()
    finally:
        runtime.ort.cache_clear()
