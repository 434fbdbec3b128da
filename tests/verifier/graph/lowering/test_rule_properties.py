"""Property-based tests (hypothesis) of lowering rules whose attributes vary most: random block sizes,
modes, pads and sizes; the lowered graph must compute what onnxruntime's own op computes, and its VJP
must match finite differences at every input pixel."""

from __future__ import annotations

import numpy as np
from checks import coordinate_fd_error
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper
from test_rules import Case, build, const

from verifier import model_from_proto
from verifier.graph import adapters
from verifier.graph.runtime import make_session


def _check(case: Case) -> None:
    proto = build(case)
    model = model_from_proto(proto)
    shape = (1, case.channels, case.size, case.size)
    static = model.static(shape)
    assert not {node.op_type for node in static.model.graph.node} & set(case.removed)
    x = np.random.default_rng(3).random(shape, dtype=np.float32)
    expected = make_session(proto.SerializeToString()).run(None, {"img": x})[0]
    lowered = make_session(static.model.SerializeToString()).run(None, {adapters.X: x})[0]
    np.testing.assert_allclose(lowered, expected, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
    # per pixel, as tests/verifier/graph/lowering/test_rules.py checks: a random direction's inner product can nearly
    # cancel, and float32 rounding then dominates its relative error (hypothesis found one for an edge Pad)
    assert coordinate_fd_error(model, x, eps=1e-2) < 1e-3  # these rules are linear: a large step only helps


@settings(max_examples=12, deadline=None)
@given(st.sampled_from([2, 3]), st.sampled_from(["DCR", "CRD"]), st.integers(1, 2), st.integers(2, 4))
def test_depth_to_space(block: int, mode: str, groups: int, cells: int):
    channels = groups * block * block
    case = Case([helper.make_node("DepthToSpace", ["a"], ["out"], blocksize=block, mode=mode)], ("DepthToSpace",),
                conv_channels=channels, size=cells * block)
    _check(case)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["constant", "reflect", "edge", "wrap"]), st.integers(2, 4), st.integers(0, 3),
       st.integers(0, 3), st.integers(6, 9))
def test_pad(mode: str, kernel: int, top: int, left: int, size: int):
    """Pad by kernel - 1 in all, split at random, then an average pool of that kernel: an image-sized output."""
    top, left = min(top, kernel - 1), min(left, kernel - 1)
    pads = np.array([0, 0, top, left, 0, 0, kernel - 1 - top, kernel - 1 - left], np.int64)
    case = Case([helper.make_node("Pad", ["a", "pads"], ["p"], mode=mode),
                 helper.make_node("AveragePool", ["p"], ["out"], kernel_shape=[kernel, kernel])],
                () if mode == "constant" else ("Pad",), [const("pads", pads)], size=size, opset=19)
    _check(case)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from([1, 2, 3]), st.integers(0, 1), st.integers(4, 7))
def test_conv_transpose(stride: int, pad: int, size: int):
    """Kernel = stride + 2 pad, so the output is exactly `stride` times the input."""
    kernel = stride + 2 * pad
    weight = np.random.default_rng(stride * 10 + kernel).normal(0, 0.3, (4, 4, kernel, kernel)).astype(np.float32)
    case = Case([helper.make_node("ConvTranspose", ["a", "wt"], ["out"], strides=[stride, stride],
                                  pads=[pad, pad, pad, pad])], ("ConvTranspose",), [const("wt", weight)], size=size)
    _check(case)
