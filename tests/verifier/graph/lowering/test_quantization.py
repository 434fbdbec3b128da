"""Quantised and half-precision models: gradients through a float surrogate, or a clear refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from builders import conv_model, save
from checks import rel_error
from onnx import TensorProto, numpy_helper

from verifier import load_model
from verifier.errors import GradientUnavailableError

quantization = pytest.importorskip("onnxruntime.quantization")

SHAPE = (1, 3, 16, 16)


class _Calibration(quantization.CalibrationDataReader):
    def __init__(self):
        rng = np.random.default_rng(0)
        self._batches = iter([{"img": rng.random(SHAPE, dtype=np.float32)} for _ in range(4)])

    def get_next(self):
        return next(self._batches, None)


def _quantized(tmp_path: Path, fmt) -> tuple[Path, Path]:
    source = save(conv_model(extra=("Relu",)), tmp_path / "float.onnx")
    target = tmp_path / f"int8_{fmt.name}.onnx"
    quantization.quantize_static(str(source), str(target), _Calibration(), quant_format=fmt,
                                 activation_type=quantization.QuantType.QUInt8,
                                 weight_type=quantization.QuantType.QInt8)
    return source, target


def test_qdq_model_gets_straight_through_gradients(tmp_path: Path):
    source, target = _quantized(tmp_path, quantization.QuantFormat.QDQ)
    float_model, int8_model = load_model(source), load_model(target)
    rng = np.random.default_rng(1)
    x = rng.random(SHAPE, dtype=np.float32)
    dy = rng.normal(size=SHAPE).astype(np.float32)
    # The surrogate drops only the rounding: its gradient is close to the float model's...
    assert rel_error(int8_model.vjp(x, dy), float_model.vjp(x, dy)) < 0.1
    # ...and its output is within a fraction of a quantisation step of the int8 model's (run with
    # the ONNX semantics: onnxruntime's fused int8 Conv is 0.12 off on CPUs without VNNI).
    assert np.abs(int8_model.run(x) - float_model.run(x)).max() < 0.05


def test_fused_quantized_kernels_are_refused(tmp_path: Path):
    _, target = _quantized(tmp_path, quantization.QuantFormat.QOperator)
    model = load_model(target)
    with pytest.raises(GradientUnavailableError, match=r"QLinearConv.*QDQ"):
        model.vjp(np.zeros(SHAPE, np.float32), np.zeros(SHAPE, np.float32))


def test_float16_model_is_computed_in_float32(tmp_path: Path):
    proto = conv_model()
    half = onnx.ModelProto()
    half.CopyFrom(proto)
    weight = half.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight).astype(np.float16), weight.name))
    for value in (*half.graph.input, *half.graph.output):
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    full, reduced = load_model(save(proto, tmp_path / "f32.onnx")), load_model(save(half, tmp_path / "f16.onnx"))
    rng = np.random.default_rng(2)
    x = rng.random(SHAPE, dtype=np.float32)
    dy = rng.normal(size=SHAPE).astype(np.float32)
    assert np.abs(reduced.run(x) - full.run(x)).max() < 1e-2
    assert rel_error(reduced.vjp(x, dy), full.vjp(x, dy)) < 1e-2
