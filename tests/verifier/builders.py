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


def chain_weights(seed: int, channels: int = 1, depth: int = 5, width: int = 16) -> list[np.ndarray]:
    """3x3 kernels for :func:`conv_chain`: a shared population structure (smooth, centre-heavy) plus per-filter
    identity, like trained layers; `channels` in and out, `width` hidden."""
    rng = np.random.default_rng(seed)
    shapes = [(width, channels)] + [(width, width)] * (depth - 2) + [(channels, width)]
    base = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16
    return [(0.5 * base + rng.normal(0, 0.2, (o, i, 3, 3))).astype(np.float32) for o, i in shapes]


def conv_chain(convs: list[np.ndarray], weight_nodes=None) -> onnx.ModelProto:
    """img -> (Conv 3x3 -> Relu) x n -> out, the weights given; its hidden layers carry a weight sketch.

    `weight_nodes(index, weight, name)` -> (nodes, initializers) may route a weight through other ops.
    """
    nodes, initializers, current = [], [], "img"
    for index, weight in enumerate(convs):
        name = f"w{index}"
        if weight_nodes is None:
            initializers.append(numpy_helper.from_array(weight, name))
        else:
            extra_nodes, extra_inits = weight_nodes(index, weight, name)
            nodes += extra_nodes
            initializers += extra_inits
        nodes.append(helper.make_node("Conv", [current, name], [f"c{index}"], pads=[1, 1, 1, 1]))
        last = index == len(convs) - 1
        if not last:
            nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        current = f"c{index}" if last else f"r{index}"
    nodes.append(helper.make_node("Identity", [current], ["out"]))
    channels = convs[0].shape[1]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("img", TensorProto.FLOAT,
                                                                             ["N", channels, "H", "W"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
