"""Every lowering rule: the op disappears, outputs are unchanged, and the VJP matches per-pixel finite differences.

Each case is a tiny model img -> Conv3x3 -> `a` -> (nodes under test) -> out, so that it is an
image model `model_from_proto` accepts; the conv makes `a` a smooth, non-trivial function of the
input.  Outputs of the lowered static graph are compared with onnxruntime running the original
op; gradients with central differences at every input pixel (relative error < 1e-3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
from checks import coordinate_fd_error
from onnx import TensorProto, helper, numpy_helper

from verifier import model_from_proto
from verifier.errors import UnsupportedModelError
from verifier.graph import adapters
from verifier.graph.runtime import make_session

RNG = np.random.default_rng(0)


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


@dataclass
class Case:
    """Nodes reading `a` ([1, C, H, W]) and writing `out`, plus what must disappear."""

    nodes: list[onnx.NodeProto]
    removed: tuple[str, ...]
    inits: list[onnx.TensorProto] = field(default_factory=list)
    channels: int = 4
    size: int = 8
    opset: int = 17
    conv_channels: int | None = None
    eps: float = 1e-3  # finite-difference step: larger for linear cases (rounding), small near kinks


def _pool(op: str, auto_pad: str, kernel: int) -> Case:
    return Case([helper.make_node(op, ["a"], ["out"], kernel_shape=[kernel, kernel], auto_pad=auto_pad)], ())


def _if_on_shape() -> Case:
    then = helper.make_graph([helper.make_node("Relu", ["a"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Neg", ["a"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    return Case([
        helper.make_node("Shape", ["a"], ["shape"]),
        helper.make_node("Gather", ["shape", "two"], ["height"], axis=0),
        helper.make_node("Greater", ["height", "four"], ["tall"]),
        helper.make_node("If", ["tall"], ["out"], then_branch=then, else_branch=other),
    ], ("If",), [const("two", np.int64(2)), const("four", np.int64(4))])


def _resize(mode: str, transform: str, scale: float | None = None, sizes=None, **extra) -> Case:
    inputs = ["a", "", "scales"] if sizes is None else ["a", "", "", "sizes"]
    inits = [const("scales", np.array([1, 1, scale, scale], np.float32))] if sizes is None else [
        const("sizes", np.array(sizes, np.int64))]
    return Case([helper.make_node("Resize", inputs, ["out"], mode=mode, coordinate_transformation_mode=transform,
                                  **extra)], ("Resize",), inits, opset=18)


def _conv_transpose(stride: int, kernel: int, group: int = 1, then: tuple[onnx.NodeProto, ...] = (),
                    **attrs) -> Case:
    weight = RNG.normal(0, 0.3, (4, 4 // group, kernel, kernel)).astype(np.float32)
    out = "ct" if then else "out"
    return Case([helper.make_node("ConvTranspose", ["a", "wt", "bt"], [out], strides=[stride, stride],
                                  group=group, **attrs), *then],
                ("ConvTranspose",), [const("wt", weight), const("bt", RNG.normal(size=4).astype(np.float32))])


def _unary(op: str, opset: int = 17, **attrs) -> Case:
    return Case([helper.make_node(op, ["a"], ["out"], **attrs)], (op,), opset=opset)


def _scaled_back(op: str, **attrs) -> Case:
    """A reduction whose [.., 1, ..] result multiplies `a`, keeping an image-shaped output."""
    return Case([helper.make_node(op, ["a"], ["r"], **attrs), helper.make_node("Mul", ["a", "r"], ["out"])], (op,))


CASES: dict[str, Callable[[], Case]] = {
    "depth_to_space_dcr": lambda: Case([helper.make_node("DepthToSpace", ["a"], ["out"], blocksize=2)],
                                       ("DepthToSpace",), channels=1, conv_channels=4),
    "depth_to_space_crd": lambda: Case([helper.make_node("DepthToSpace", ["a"], ["out"], blocksize=2, mode="CRD")],
                                       ("DepthToSpace",), channels=1, conv_channels=4),
    "space_to_depth": lambda: Case([helper.make_node("SpaceToDepth", ["a"], ["s2d"], blocksize=2),
                                    helper.make_node("DepthToSpace", ["s2d"], ["out"], blocksize=2, mode="CRD")],
                                   ("SpaceToDepth", "DepthToSpace")),
    "batch_norm": lambda: Case([helper.make_node("BatchNormalization", ["a", "s", "b", "m", "v"], ["out"])],
                               ("BatchNormalization",),
                               [const(n, RNG.uniform(0.5, 1.5, 4).astype(np.float32)) for n in "sbmv"]),
    "instance_norm": lambda: Case([helper.make_node("InstanceNormalization", ["a", "s", "b"], ["out"])],
                                  ("InstanceNormalization",),
                                  [const(n, RNG.uniform(0.5, 1.5, 4).astype(np.float32)) for n in "sb"]),
    "group_norm_18": lambda: Case([helper.make_node("GroupNormalization", ["a", "s", "b"], ["out"], num_groups=2)],
                                  ("GroupNormalization",),
                                  [const(n, RNG.uniform(0.5, 1.5, 2).astype(np.float32)) for n in "sb"], opset=18),
    "group_norm_21": lambda: Case([helper.make_node("GroupNormalization", ["a", "s", "b"], ["out"], num_groups=2)],
                                  ("GroupNormalization",),
                                  [const(n, RNG.uniform(0.5, 1.5, 4).astype(np.float32)) for n in "sb"], opset=21),
    "layer_norm_last": lambda: Case([helper.make_node("LayerNormalization", ["a", "s", "b"], ["out"])],
                                    ("LayerNormalization",),
                                    [const(n, RNG.uniform(0.5, 1.5, 8).astype(np.float32)) for n in "sb"]),
    "layer_norm_chw": lambda: Case([helper.make_node("LayerNormalization", ["a", "s"], ["out"], axis=1)],
                                   ("LayerNormalization",),
                                   [const("s", RNG.uniform(0.5, 1.5, (4, 8, 8)).astype(np.float32))]),
    "dropout": lambda: _unary("Dropout"),
    "prelu": lambda: Case([helper.make_node("PRelu", ["a", "slope"], ["out"])], ("PRelu",),
                          [const("slope", RNG.uniform(0.1, 0.5, (4, 1, 1)).astype(np.float32))]),
    "prelu_trailing_axis": lambda: Case([helper.make_node("PRelu", ["a", "slope"], ["out"])], ("PRelu",),
                                        [const("slope", RNG.uniform(0.1, 0.5, 8).astype(np.float32))]),
    "elu": lambda: _unary("Elu", alpha=0.7),
    "selu": lambda: _unary("Selu"),
    "celu": lambda: _unary("Celu", opset=17, alpha=0.5),
    "hard_sigmoid": lambda: _unary("HardSigmoid", alpha=0.3, beta=0.4),
    "hard_swish": lambda: _unary("HardSwish"),
    "softplus": lambda: _unary("Softplus"),
    "softsign": lambda: _unary("Softsign"),
    "mish": lambda: _unary("Mish", opset=18),
    "gelu_erf": lambda: _unary("Gelu", opset=20),
    "gelu_tanh": lambda: _unary("Gelu", opset=20, approximate="tanh"),
    "thresholded_relu": lambda: _unary("ThresholdedRelu", alpha=0.05),
    "sum": lambda: Case([helper.make_node("Tanh", ["a"], ["t"]),
                         helper.make_node("Sum", ["a", "t", "k"], ["out"])], ("Sum",), [const("k", np.float32(0.3))]),
    "mean": lambda: Case([helper.make_node("Tanh", ["a"], ["t"]), helper.make_node("Mean", ["a", "t"], ["out"])],
                         ("Mean",)),
    "reduce_max_channels": lambda: _scaled_back("ReduceMax", axes=[1]),
    "reduce_min_spatial": lambda: _scaled_back("ReduceMin", axes=[2, 3]),
    "global_max_pool": lambda: _scaled_back("GlobalMaxPool"),
    "reduce_sum_square": lambda: _scaled_back("ReduceSumSquare", axes=[1]),
    "einsum_attention": lambda: Case([helper.make_node("Einsum", ["a", "a"], ["out"], equation="bhid,bhjd->bhij")],
                                     ("Einsum",)),
    "einsum_values": lambda: Case([helper.make_node("Einsum", ["a", "v"], ["out"], equation="bhij,bhjd->bhid")],
                                  ("Einsum",), [const("v", RNG.normal(size=(1, 4, 8, 8)).astype(np.float32))]),
    "einsum_ellipsis": lambda: Case([helper.make_node("Einsum", ["a", "m"], ["out"], equation="...ij,jk->...ik")],
                                    ("Einsum",), [const("m", RNG.normal(size=(8, 8)).astype(np.float32))]),
    "einsum_transpose": lambda: Case([helper.make_node("Einsum", ["a"], ["out"], equation="bchw->bcwh")],
                                     ("Einsum",)),
    "resize_nearest_x2": lambda: _resize("nearest", "asymmetric", 2.0, nearest_mode="floor"),
    "resize_linear_half_pixel": lambda: _resize("linear", "half_pixel", 2.0),
    "resize_linear_align_corners": lambda: _resize("linear", "align_corners", sizes=[1, 4, 24, 24]),
    "resize_cubic": lambda: _resize("cubic", "half_pixel", 3.0),
    "resize_linear_down_up": lambda: Case([
        helper.make_node("Resize", ["a", "", "half"], ["small"], mode="linear"),
        helper.make_node("Resize", ["small", "", "four"], ["out"], mode="linear")], ("Resize",),
        [const("half", np.array([1, 1, 0.5, 0.5], np.float32)), const("four", np.array([1, 1, 4, 4], np.float32))],
        opset=18),
    "conv_transpose_s2": lambda: _conv_transpose(2, 4, pads=[1, 1, 1, 1]),
    "conv_transpose_s3_output_padding": lambda: _conv_transpose(3, 3, pads=[1, 0, 1, 0], output_padding=[2, 0]),
    "conv_transpose_dilated_groups": lambda: _conv_transpose(2, 3, group=2, dilations=[2, 2], pads=[2, 2, 2, 2],
                                                             output_padding=[1, 1]),
    "conv_transpose_same_upper": lambda: _conv_transpose(2, 3, auto_pad="SAME_UPPER"),
    "conv_transpose_output_shape": lambda: _conv_transpose(2, 5, output_shape=[16, 16]),
    "conv_transpose_stride1_crop": lambda: _conv_transpose(  # pads > kernel - 1 crop the input
        1, 3, pads=[3, 3, 3, 3], then=(helper.make_node("DepthToSpace", ["ct"], ["out"], blocksize=2),)),
    "pad_reflect": lambda: Case([helper.make_node("Pad", ["a", "pads"], ["p"], mode="reflect"),
                                 helper.make_node("AveragePool", ["p"], ["out"], kernel_shape=[4, 4])], ("Pad",),
                                [const("pads", np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64))], eps=1e-2),
    "pad_edge": lambda: Case([helper.make_node("Pad", ["a", "pads"], ["p"], mode="edge"),
                              helper.make_node("AveragePool", ["p"], ["out"], kernel_shape=[4, 4])], ("Pad",),
                             [const("pads", np.array([0, 0, 3, 0, 0, 0, 0, 3], np.int64))], eps=1e-2),
    "pad_wrap": lambda: Case([helper.make_node("Pad", ["a", "pads"], ["p"], mode="wrap"),
                              helper.make_node("AveragePool", ["p"], ["out"], kernel_shape=[4, 4])], ("Pad",),
                             [const("pads", np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64))], opset=19, eps=1e-2),
    "conv_same_upper_stride2": lambda: Case([
        helper.make_node("Conv", ["a", "w4"], ["c"], kernel_shape=[4, 4], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("DepthToSpace", ["c"], ["out"], blocksize=2)], ("DepthToSpace",),
        [const("w4", RNG.normal(0, 0.3, (16, 4, 4, 4)).astype(np.float32))]),
    "conv_same_lower_even": lambda: Case([
        helper.make_node("Conv", ["a", "w4"], ["out"], kernel_shape=[4, 4], auto_pad="SAME_LOWER")], (),
        [const("w4", RNG.normal(0, 0.3, (4, 4, 4, 4)).astype(np.float32))]),
    "average_pool_same_upper": lambda: _pool("AveragePool", "SAME_UPPER", 2),
    "max_pool_same_lower": lambda: _pool("MaxPool", "SAME_LOWER", 3),
    "if_on_shape": _if_on_shape,
    "same_tensor_twice": lambda: Case([helper.make_node("Mul", ["a", "a"], ["out"])], ()),
}


def build(case: Case) -> onnx.ModelProto:
    """img -> Conv3x3 -> a -> case.nodes -> out."""
    conv_out = case.conv_channels or 4
    weight = np.random.default_rng(1).normal(0, 0.4, (conv_out, case.channels, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["img", "w"], ["a"], pads=[1, 1, 1, 1]), *case.nodes]
    graph = helper.make_graph(
        nodes, "case",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, case.channels, case.size, case.size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [const("w", weight), *case.inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule(name: str):
    global RNG
    RNG = np.random.default_rng(sorted(CASES).index(name))  # case parameters independent of test order
    case = CASES[name]()
    proto = build(case)
    model = model_from_proto(proto)
    shape = (1, case.channels, case.size, case.size)
    x = np.random.default_rng(2).random(shape, dtype=np.float32)
    static = model.static(shape)
    remaining = {node.op_type for node in static.model.graph.node}
    assert not remaining & set(case.removed), remaining
    assert not any(a.name == "auto_pad" for node in static.model.graph.node for a in node.attribute)
    expected = make_session(proto.SerializeToString()).run(None, {"img": x})[0]
    lowered = make_session(static.model.SerializeToString()).run(None, {adapters.X: x})[0]
    np.testing.assert_allclose(lowered, expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
    assert coordinate_fd_error(model, x, eps=case.eps) < 1e-3


def test_einsum_diagonal_is_refused():
    case = Case([helper.make_node("Einsum", ["a"], ["d"], equation="bcii->bci"),
                 helper.make_node("Unsqueeze", ["d", "axis"], ["column"]),
                 helper.make_node("Mul", ["a", "column"], ["out"])], (), [const("axis", np.array([3]))])
    model = model_from_proto(build(case))
    with pytest.raises(UnsupportedModelError, match="repeated index"):
        model.static((1, 4, 8, 8))
