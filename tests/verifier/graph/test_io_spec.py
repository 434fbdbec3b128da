"""Detecting the image I/O: layout, channels, scale and range."""

from __future__ import annotations

import onnx
import pytest
from builders import conv_model
from onnx import TensorProto, helper

from verifier.errors import InputError, UnsupportedModelError
from verifier.graph.io_spec import META_RANGE, describe, parse_range
from verifier.graph.normalise import normalise


@pytest.mark.parametrize(
    ("layout", "dims", "source"),
    [
        ("NCHW", ("N", None, "H", "W"), "shape"),
        ("NHWC", ("N", None, "H", "W"), "shape"),
        ("NCHW", ("N", "C", "H", "W"), "graph"),
        ("NHWC", ("N", "C", "H", "W"), "graph"),
        ("NCHW", (1, None, 3, 3), "graph"),
    ],
)
def test_layout_detection(layout: str, dims: tuple, source: str):
    io = describe(normalise(conv_model(layout=layout, dims=dims)))
    assert (io.layout, io.layout_source, io.channels) == (layout, source, 3)


def test_fixed_size_and_scale():
    io = describe(normalise(conv_model(scale=3, dims=(1, None, 12, 10))))
    assert (io.scale, io.height, io.width, io.out_channels) == (3, 12, 10, 3)


def test_override_and_metadata_range():
    model = conv_model()
    onnx.helper.set_model_props(model, {META_RANGE: "0,255"})
    io = describe(normalise(model), layout="NCHW")
    assert io.layout_source == "override"
    assert io.value_range == (0.0, 255.0)
    assert describe(normalise(model), value_range=(-1.0, 1.0)).value_range == (-1.0, 1.0)


def test_rejects_non_image_input():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["v"], ["out"])], "vec",
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedModelError, match="one 4-D image input"):
        describe(normalise(model))


@pytest.mark.parametrize("text", ["1", "a,b", "1,0", "0,nan"])
def test_parse_range_rejects(text: str):
    with pytest.raises(InputError):
        parse_range(text)
