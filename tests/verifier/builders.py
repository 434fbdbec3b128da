"""Small ONNX models built in-process, so tests need no framework and no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_model(
    channels: int = 3,
    layout: str = "NCHW",
    scale: int = 1,
    extra: tuple[str, ...] = (),
    dims: tuple = ("N", None, "H", "W"),
    opset: int = 17,
    seed: int = 0,
) -> onnx.ModelProto:
    """img -> Conv3x3 (channels * scale^2) -> Tanh -> [extra unary ops] -> [DepthToSpace] -> out.

    `dims` gives the input's declared (N, C, H, W) dims in NCHW order; None means `channels`.
    For NHWC the model transposes in and out like tf2onnx does.
    """
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.3, (channels * scale * scale, channels, 3, 3)).astype(np.float32)
    nodes, current = [], "img"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [current], ["nchw"], perm=[0, 3, 1, 2]))
        current = "nchw"
    nodes.append(helper.make_node("Conv", [current, "w"], ["conv"], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Tanh", ["conv"], ["act0"]))
    current = "act0"
    for index, op in enumerate(extra):
        nodes.append(helper.make_node(op, [current], [f"act{index + 1}"]))
        current = f"act{index + 1}"
    if scale > 1:
        nodes.append(helper.make_node("DepthToSpace", [current], ["up"], blocksize=scale, mode="CRD"))
        current = "up"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [current], ["out"], perm=[0, 2, 3, 1]))
    else:
        nodes.append(helper.make_node("Identity", [current], ["out"]))
    n, c, h, w = dims
    c = channels if c is None else c
    shape = [n, h, w, c] if layout == "NHWC" else [n, c, h, w]
    graph = helper.make_graph(
        nodes, "conv_model", [helper.make_tensor_value_info("img", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write a model and return its path."""
    onnx.save(model, str(path))
    return path
