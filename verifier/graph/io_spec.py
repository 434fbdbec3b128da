"""Describe a model's image input and output.

Later stages all work in one convention (float32 NCHW in [0, 1]); this module
finds what the model itself expects so that :mod:`verifier.graph.adapters` can bridge
the two.  Layout is read from static dimensions when they are unambiguous, then
from the graph (a leading Transpose to NCHW marks an NHWC model), then from
exporter metadata; any of it can be overridden by the caller.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import onnx

from verifier.errors import InputError, UnsupportedModelError, first_line
from verifier.graph.runtime import make_session

Layout = Literal["NCHW", "NHWC"]
LAYOUTS: tuple[Layout, ...] = ("NCHW", "NHWC")
#: Metadata keys written by `exporters` (and honoured here).
META_LAYOUT = "verifier.input_layout"
META_RANGE = "verifier.value_range"
#: Largest fixed input a model may declare (a probe of that size is allocated and run).
MAX_PIXELS = 4096 * 4096
#: Most image channels a model may take.
MAX_CHANNELS = 16
#: Spatial size used to probe models whose input size is free.
PROBE_SIZE = 64
_PASS_THROUGH = {"Identity", "Cast", "Mul", "Add", "Sub", "Div", "Clip"}


@dataclass(frozen=True)
class ImageIO:
    """How a model takes and returns images."""

    input_name: str
    output_name: str
    layout: Layout
    channels: int
    out_channels: int
    scale: int
    value_range: tuple[float, float]
    height: int | None
    width: int | None
    layout_source: str

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    def check_batch(self, x: np.ndarray) -> None:
        """Refuse anything but an NCHW batch with this model's channel count (model files and endpoints alike)."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise InputError(f"expected an NCHW batch with {self.channels} channels, got shape {list(x.shape)}")


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def _image_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    inputs = list(model.graph.input)
    images = [v for v in inputs if len(v.type.tensor_type.shape.dim) == 4]
    if len(inputs) != 1 or len(images) != 1:
        names = ", ".join(f"{v.name}{_dims(v)}" for v in inputs) or "none"
        raise UnsupportedModelError(
            f"expected exactly one 4-D image input, found {len(inputs)} input(s): {names}"
        )
    if images[0].type.tensor_type.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                                    onnx.TensorProto.DOUBLE):
        raise UnsupportedModelError(f"image input '{images[0].name}' is not a floating-point tensor")
    return images[0]


def _layout_from_graph(model: onnx.ModelProto, name: str) -> Layout | None:
    """Follow the input through element-wise ops to the first Transpose or Conv."""
    frontier = [name]
    seen = set()
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        for node in model.graph.node:
            if current not in node.input:
                continue
            if node.op_type == "Transpose":
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                return "NHWC" if perm == [0, 3, 1, 2] else None
            if node.op_type in ("Conv", "ConvTranspose"):
                return "NCHW"
            if node.op_type in _PASS_THROUGH:
                frontier.extend(node.output)
    return None


def layout_from_dims(dims: list[int | None]) -> Layout | None:
    """NCHW or NHWC when exactly one of the channel positions holds a small static dim (None: unknown or both)."""

    def small(d: int | None) -> bool:
        return d is not None and d <= 4

    if small(dims[1]) and not small(dims[3]):
        return "NCHW"
    if small(dims[3]) and not small(dims[1]):
        return "NHWC"
    return None


def layout_axes(layout: Layout) -> tuple[int, int, int]:
    """The (channel, height, width) axes of a 4-D tensor in `layout`."""
    return (1, 2, 3) if layout == "NCHW" else (3, 1, 2)


def integer_scale(scale_h: float, scale_w: float) -> int | None:
    """The scale factor when the output/input size ratios are one integer of at least 1, else None."""
    return int(scale_h) if scale_h == scale_w and scale_h >= 1 and scale_h == int(scale_h) else None


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def parse_range(text: str) -> tuple[float, float]:
    """Parse 'lo,hi' (e.g. '0,255') into a range, rejecting empty ones."""
    try:
        lo, hi = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise InputError(f"value range must be 'lo,hi', got {text!r}") from exc
    if not np.isfinite([lo, hi]).all() or hi <= lo:
        raise InputError(f"value range must have lo < hi, got {text!r}")
    return lo, hi


def describe(
    model: onnx.ModelProto,
    layout: Layout | None = None,
    value_range: tuple[float, float] | None = None,
) -> ImageIO:
    """Find the image I/O of a normalised model, probing it once to measure the scale."""
    image = _image_input(model)
    if len(model.graph.output) != 1:
        raise UnsupportedModelError(f"expected one output, found {len(model.graph.output)}")
    dims = _dims(image)
    meta = _metadata(model)
    source = "override"
    if layout is None:
        candidates = (
            ("metadata", meta.get(META_LAYOUT)),
            ("shape", layout_from_dims(dims)),
            ("graph", _layout_from_graph(model, image.name)),
            ("default", "NCHW"),
        )
        source, layout = next((where, found) for where, found in candidates if found in LAYOUTS)
    if layout not in LAYOUTS:
        raise InputError(f"layout must be NCHW or NHWC, got {layout!r}")
    if value_range is None:
        value_range = parse_range(meta[META_RANGE]) if META_RANGE in meta else (0.0, 1.0)
    c_axis, h_axis, w_axis = layout_axes(layout)
    channels = dims[c_axis] or _channels_from_first_conv(model, image.name)
    height, width = dims[h_axis], dims[w_axis]
    if not 1 <= channels <= MAX_CHANNELS:
        raise UnsupportedModelError(f"input '{image.name}' has {channels} channels; verifier handles 1 to "
                                    f"{MAX_CHANNELS}")
    if (height or 1) * (width or 1) > MAX_PIXELS:
        raise UnsupportedModelError(f"input '{image.name}' is fixed at {height}x{width} pixels; verifier handles "
                                    f"at most {MAX_PIXELS} pixels (4096x4096)")
    probe = [1, 0, 0, 0]
    probe[c_axis], probe[h_axis], probe[w_axis] = channels, height or PROBE_SIZE, width or PROBE_SIZE
    out = _probe(model, image, probe)
    if out.ndim != 4:
        raise UnsupportedModelError(f"output '{model.graph.output[0].name}' is {out.ndim}-D, expected 4-D")
    scale_h, scale_w = out.shape[h_axis] / probe[h_axis], out.shape[w_axis] / probe[w_axis]
    scale = integer_scale(scale_h, scale_w)
    if scale is None:
        raise UnsupportedModelError(
            f"output/input size ratio {scale_h:g}x{scale_w:g} is not one integer scale factor"
        )
    return ImageIO(
        input_name=image.name,
        output_name=model.graph.output[0].name,
        layout=layout,
        channels=int(channels),
        out_channels=int(out.shape[c_axis]),
        scale=scale,
        value_range=(float(value_range[0]), float(value_range[1])),
        height=height,
        width=width,
        layout_source=source,
    )


def _channels_from_first_conv(model: onnx.ModelProto, name: str) -> int:
    weights = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in weights:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            return int(weights[node.input[1]].dims[1]) * group
    raise UnsupportedModelError(f"cannot tell the channel count of input '{name}'; give it explicitly")


def _probe(model: onnx.ModelProto, image: onnx.ValueInfoProto, shape: list[int]) -> np.ndarray:
    dtype = onnx.helper.tensor_dtype_to_np_dtype(image.type.tensor_type.elem_type)
    session = make_session(model.SerializeToString())
    try:
        return session.run(None, {image.name: np.zeros(shape, dtype=dtype)})[0]
    except Exception as exc:  # onnxruntime raises untyped errors for shape mismatches
        raise UnsupportedModelError(f"model fails on a {shape} probe input: {first_line(exc)}") from exc
