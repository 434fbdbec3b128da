"""The Resize lowering on channels-last tensors (as jax2onnx emits them) and with the opset-18 `axes`.

Each model is img -> Conv3x3 -> [Transpose to NHWC] -> Resize -> [Transpose back] -> out.  The
lowered static graph must have no Resize, the same outputs as onnxruntime's Resize, and a VJP
that matches central differences at every input pixel.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from checks import coordinate_fd_error
from onnx import TensorProto, helper, numpy_helper

from verifier import model_from_proto
from verifier.graph import adapters
from verifier.graph.runtime import make_session

CHANNELS, SIZE = 2, 6


def _model(channels_last: bool, inputs: dict[str, np.ndarray], axes: list[int] | None = None,
           **attrs) -> onnx.ModelProto:
    weight = np.random.default_rng(1).normal(0, 0.4, (3, CHANNELS, 3, 3)).astype(np.float32)
    names = ["", "scales", "sizes"]
    resize_inputs = ["a_nhwc" if channels_last else "a", *[n if n in inputs else "" for n in names]]
    while not resize_inputs[-1]:
        resize_inputs.pop()
    if axes is not None:
        attrs["axes"] = axes
    nodes = [helper.make_node("Conv", ["img", "w"], ["a"], pads=[1, 1, 1, 1])]
    if channels_last:
        nodes.append(helper.make_node("Transpose", ["a"], ["a_nhwc"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Resize", resize_inputs, ["r" if channels_last else "out"], **attrs))
    if channels_last:
        nodes.append(helper.make_node("Transpose", ["r"], ["out"], perm=[0, 3, 1, 2]))
    inits = [numpy_helper.from_array(weight, "w"), *(numpy_helper.from_array(v, k) for k, v in inputs.items())]
    graph = helper.make_graph(
        nodes, "resize", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, CHANNELS, SIZE, SIZE])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


# Overall scales are integers, as model_from_proto requires of image models.  Not covered, as
# onnxruntime 1.19 cannot run them itself: cubic on NHWC tensors, `sizes` with `axes`, and
# `axes` other than the trailing ones.
CASES = {
    "nhwc_linear_x2_scales": lambda: _model(True, {"scales": np.array([1, 2, 2, 1], np.float32)}, mode="linear"),
    "nhwc_linear_sizes": lambda: _model(True, {"sizes": np.array([1, 12, 12, 3], np.int64)}, mode="linear",
                                        coordinate_transformation_mode="pytorch_half_pixel"),
    "nhwc_nearest_x3": lambda: _model(True, {"scales": np.array([1, 3, 3, 1], np.float32)}, mode="nearest",
                                      coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    "nchw_axes_scales": lambda: _model(False, {"scales": np.array([2, 2], np.float32)}, axes=[2, 3],
                                       mode="linear"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_resize_is_lowered(name: str):
    proto = CASES[name]()
    model = model_from_proto(proto)
    shape = (1, CHANNELS, SIZE, SIZE)
    static = model.static(shape)
    assert "Resize" not in {node.op_type for node in static.model.graph.node}
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    expected = make_session(proto.SerializeToString()).run(None, {"img": x})[0]
    lowered = make_session(static.model.SerializeToString()).run(None, {adapters.X: x})[0]
    np.testing.assert_allclose(lowered, expected, atol=1e-5)
    assert coordinate_fd_error(model, x, eps=1e-2) < 1e-3
