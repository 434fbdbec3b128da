"""An MLServer runtime that serves one ONNX file through onnxruntime (the endpoint tests' real server).

MLServer imports it by name from the folder it serves (``"implementation": "mlserver_runtime.OnnxModel"``
in a model's ``model-settings.json``, ``parameters.uri`` the ONNX file), so the tests copy it there.
``parameters.extra.fault`` makes a model misbehave as a broken deployment would: ``"nan"`` puts a NaN in
every answer, ``"error"`` raises inside predict (MLServer answers HTTP 500).
"""

from __future__ import annotations

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    """f(x) of one ONNX image model, its first input fed with the request's only tensor."""

    async def load(self) -> bool:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(self.settings.parameters.uri, options,
                                                     providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._fault = (self.settings.parameters.extra or {}).get("fault")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if self._fault == "error":
            raise RuntimeError("the model crashed")
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        (y,) = self._session.run(None, {self._input: x})
        if self._fault == "nan":
            y.flat[0] = np.nan
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("output", y)])
