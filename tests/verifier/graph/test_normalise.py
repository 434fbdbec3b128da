"""Opset and IR normalisation for the training runtime."""

from __future__ import annotations

import pytest
from builders import conv_model

from verifier.graph.normalise import MAX_IR, default_opset, normalise
from verifier.graph.runtime import make_session


@pytest.mark.parametrize(("opset", "expected"), [(11, 13), (17, 17), (21, 21), (23, 21)])
def test_opset_brought_into_range(opset: int, expected: int):
    model = conv_model(opset=opset)
    model.ir_version = 14 if opset > 21 else 6
    result = normalise(model)
    assert default_opset(result) == expected
    assert result.ir_version <= MAX_IR
    make_session(result.SerializeToString())  # onnxruntime-training accepts it
