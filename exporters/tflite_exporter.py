"""TFLite flatbuffers -> ONNX through tf2onnx.

A .tflite file is a flatbuffer of ops and constants (no code runs when it is
read); tf2onnx converts it op by op and fails on custom ops, which become a
one-line error.  The equivalence check runs TensorFlow Lite's own interpreter on
a fixed input of the model's declared size.  TFLite models are NHWC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exporters.base import (
    ExportError,
    ExportRequest,
    ExportResult,
    finish_export,
    quiet_framework,
    require,
    version,
)
from verifier.errors import first_line

_OPSET = 17
#: Size used for dimensions the file leaves free.
_FREE_SIZE = 32


def _native_output(tf, path: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(input, output) of the TFLite interpreter on a seeded input of the declared shape."""
    interpreter = tf.lite.Interpreter(model_path=str(path))
    (source,), (sink,) = interpreter.get_input_details(), interpreter.get_output_details()
    shape = [int(d) if d > 0 else (1 if i == 0 else _FREE_SIZE) for i, d in enumerate(source["shape_signature"])]
    if list(source["shape"]) != shape:
        interpreter.resize_tensor_input(source["index"], shape)
    interpreter.allocate_tensors()
    example = np.random.default_rng(seed).random(shape, dtype=np.float32)
    interpreter.set_tensor(source["index"], example)
    interpreter.invoke()
    return example, interpreter.get_tensor(sink["index"])


class TFLiteExporter:
    """TensorFlow Lite files (float models; NHWC)."""

    name = "tflite"
    extra = "tensorflow"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() == ".tflite"

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        tf = require("tensorflow", self.extra)
        tf2onnx = require("tf2onnx", self.extra)
        import onnx

        try:
            with quiet_framework():
                proto, _ = tf2onnx.convert.from_tflite(str(request.source), opset=_OPSET)
                example, native = _native_output(tf, request.source) if request.check else (None, None)
        except Exception as exc:  # tf2onnx and the interpreter raise untyped errors
            raise ExportError(f"cannot convert {request.source} from TFLite: {first_line(exc)}") from exc
        onnx.save(proto, str(target))
        return finish_export(
            target, request, native, example, framework="tflite", framework_version=tf.__version__,
            exporter="tf2onnx.convert.from_tflite", exporter_version=version("tf2onnx"), layout="NHWC",
            value_range=(0.0, 1.0), architecture="(from the TFLite graph)")
