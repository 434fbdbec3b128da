"""Resize and ConvTranspose, whose ORT gradients have no CPU kernel.

Resize on the two spatial axes is separable and linear in its input, so for a
fixed input size it equals ``A_h @ x @ A_w.T`` with constant interpolation
matrices.  We read those matrices off onnxruntime's own Resize by running it on
one-hot images, so every mode (nearest, linear, cubic, each coordinate
transform) keeps exactly the model's semantics, and check the result on a
random image.  The two resized axes may be (H, W) of NCHW or, as jax2onnx emits
for channels-last models, (H, W) of NHWC.  ConvTranspose becomes zero insertion
followed by an ordinary Conv with the flipped, transposed kernel.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from verifier.errors import UnsupportedModelError, first_line
from verifier.graph.lowering.base import LoweringContext, attr, lowers, node_label
from verifier.graph.runtime import make_session

_RESIZE_TOLERANCE = 1e-4


def _run_resize(node: onnx.NodeProto, ctx: LoweringContext, x: np.ndarray, out_shape: list[int]) -> np.ndarray:
    """Run the model's own Resize node alone on `x`, any `sizes` input replaced by `out_shape`."""
    inputs = list(node.input) + [""] * (4 - len(node.input))
    inits = []
    names = ["x"]
    for slot, name in enumerate(inputs[1:], start=1):
        value = ctx.value(name)
        if name and value is None:
            raise UnsupportedModelError(f"{node_label(node)} has run-time scales or sizes")
        if slot == 3 and value is not None:
            value = np.array(out_shape[-value.size:], dtype=np.int64)
        names.append(f"in{slot}" if value is not None else "")
        if value is not None:
            inits.append(numpy_helper.from_array(value, f"in{slot}"))
    while names and not names[-1]:
        names.pop()
    single = helper.make_node("Resize", names, ["y"], **{a.name: helper.get_attribute_value(a) for a in node.attribute})
    graph = helper.make_graph([single], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ctx.opset)])
    model.ir_version = 8
    try:
        return make_session(model.SerializeToString()).run(None, {"x": x})[0]
    except Exception as exc:  # onnxruntime raises untyped errors
        raise UnsupportedModelError(f"{node_label(node)} cannot be evaluated alone: {first_line(exc)}") from exc


def _spatial_axes(node: onnx.NodeProto, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, int]:
    """The (height, width) axes of a 4-D Resize: (2, 3) for NCHW tensors, (1, 2) for NHWC ones."""
    if len(in_shape) == 4 and len(out_shape) == 4:
        for axes, kept in (((2, 3), (0, 1)), ((1, 2), (0, 3))):
            if all(in_shape[a] == out_shape[a] for a in kept):
                return axes
    raise UnsupportedModelError(f"{node_label(node)} resizes more than the spatial axes")


def _interpolation_matrix(node: onnx.NodeProto, ctx: LoweringContext, in_shape: tuple[int, ...],
                          axes: tuple[int, int], along: int, target: int) -> np.ndarray:
    """The (target, size) matrix the Resize applies on axis `along` (one of the spatial `axes`).

    The probe is a batch of one-hot images, one per position on `along`; the batch
    axis indexes the position (Resize never touches it), the other spatial axis is
    a thin constant strip, and the remaining axis has size 1.
    """
    size, other = in_shape[along], axes[1] if along == axes[0] else axes[0]
    # A constant strip resizes to a constant, so it only has to survive the scale.
    strip = min(in_shape[other], -(-2 * in_shape[other] // ctx.shape(node.output[0])[other]))
    eye_shape = [size, 1, 1, 1]
    eye_shape[along] = size
    probe_shape = list(eye_shape)
    probe_shape[other] = strip
    probe = np.ascontiguousarray(np.broadcast_to(np.eye(size, dtype=np.float32).reshape(eye_shape), probe_shape))
    target_shape = list(eye_shape)
    target_shape[along] = target
    index: list[int | slice] = [0, 0, 0, 0]
    index[0] = index[along] = slice(None)
    return _run_resize(node, ctx, probe, target_shape)[tuple(index)].T


@lowers("Resize")
def resize(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Two MatMuls with constant interpolation matrices (between Transposes for channels-last tensors)."""
    in_shape, out_shape = ctx.shape(node.input[0]), ctx.shape(node.output[0])
    axes = _spatial_axes(node, in_shape, out_shape)
    mode = attr(node, "coordinate_transformation_mode", b"half_pixel")
    if mode in (b"tf_crop_and_resize", "tf_crop_and_resize"):
        raise UnsupportedModelError(f"{node_label(node)}: tf_crop_and_resize is not supported")
    (h, w), (ho, wo) = (in_shape[a] for a in axes), (out_shape[a] for a in axes)
    a_h = _interpolation_matrix(node, ctx, in_shape, axes, axes[0], ho)  # (ho, h)
    a_w = _interpolation_matrix(node, ctx, in_shape, axes, axes[1], wo)  # (wo, w)
    image_shape = [1, 1, 1, 1]
    image_shape[axes[0]], image_shape[axes[1]] = h, w
    image = np.random.default_rng(0).random((h, w), dtype=np.float32)
    target_shape = [1, 1, 1, 1]
    target_shape[axes[0]], target_shape[axes[1]] = ho, wo
    expected = _run_resize(node, ctx, image.reshape(image_shape), target_shape)
    if expected.size != ho * wo or np.abs(a_h @ image @ a_w.T - expected.reshape(ho, wo)).max() > _RESIZE_TOLERANCE:
        raise UnsupportedModelError(f"{node_label(node)} is not a separable resize")
    x, out = node.input[0], node.output[0]
    perm = [a for a in range(4) if a not in axes] + list(axes)  # spatial axes last
    channels_first = perm == [0, 1, 2, 3]
    if not channels_first:
        x = ctx.transpose(x, perm)
    n, c = (in_shape[a] for a in perm[:2])
    tall = ctx.emit("MatMul", [ctx.const(a_h, "resize_rows"), x], shape=(n, c, ho, w))
    resized = ctx.emit("MatMul", [tall, ctx.const(np.ascontiguousarray(a_w.T), "resize_cols")],
                       out=out if channels_first else None, shape=(n, c, ho, wo))
    if not channels_first:
        ctx.transpose(resized, list(np.argsort(perm)), out=out)


def _conv_transpose_pads(node: onnx.NodeProto, in_hw, kernel, strides, dilations, out_pad) -> list[int]:
    """Begin/end pads of the transposed conv, resolving auto_pad and output_shape."""
    pads = list(attr(node, "pads", [0, 0, 0, 0]))
    auto_pad = attr(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    output_shape = attr(node, "output_shape")
    if output_shape is None and auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        return pads if auto_pad != "VALID" else [0, 0, 0, 0]
    if output_shape is not None:
        target = list(output_shape)[-2:]
    else:
        target = [i * s for i, s in zip(in_hw, strides, strict=True)]
    begins, ends = [], []
    for i, s, k, d, o, t in zip(in_hw, strides, kernel, dilations, out_pad, target, strict=True):
        total = s * (i - 1) + o + (k - 1) * d + 1 - t
        small, large = total // 2, total - total // 2
        # The spec gives the odd pixel to the end only for SAME_UPPER (output_shape alone: to the start).
        begin, end = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        begins.append(begin)
        ends.append(end)
    return begins + ends


@lowers("ConvTranspose")
def conv_transpose(node: onnx.NodeProto, ctx: LoweringContext) -> None:
    """Insert stride-1 zeros between input pixels, pad, then Conv with the flipped kernel."""
    x, weight_name = node.input[0], node.input[1]
    weight = ctx.value(weight_name)
    if weight is None or len(ctx.shape(x)) != 4:
        raise UnsupportedModelError(f"{node_label(node)}: only 2-D ConvTranspose with constant weights")
    n, cin, h, w = ctx.shape(x)
    group = attr(node, "group", 1)
    _, cout_g, kh, kw = weight.shape
    strides = list(attr(node, "strides", [1, 1]))
    dilations = list(attr(node, "dilations", [1, 1]))
    out_pad = list(attr(node, "output_padding", [0, 0]))
    pads = _conv_transpose_pads(node, (h, w), (kh, kw), strides, dilations, out_pad)
    sh, sw = strides
    if (sh, sw) != (1, 1):
        grid = ctx.reshape(x, [n, cin, h, 1, w, 1])
        widths = ctx.const([0, 0, 0, 0, 0, 0, 0, 0, 0, sh - 1, 0, sw - 1], "pads", np.int64)
        spread = ctx.emit("Pad", [grid, widths], mode="constant")
        flat = ctx.reshape(spread, [n, cin, h * sh, w * sw])
        x = ctx.emit("Slice", [flat, ctx.const([0, 0], "starts", np.int64),
                               ctx.const([h * sh - sh + 1, w * sw - sw + 1], "ends", np.int64),
                               ctx.const([2, 3], "axes", np.int64)])
    conv_pads, crop = [], []
    for axis, (k, d) in enumerate(zip((kh, kw), dilations, strict=True)):
        full = (k - 1) * d
        conv_pads.append((full - pads[axis], full - pads[axis + 2] + out_pad[axis]))
    crop = [(max(-b, 0), max(-e, 0)) for b, e in conv_pads]
    if any(b or e for b, e in crop):
        sizes = [(h - 1) * sh + 1, (w - 1) * sw + 1]
        x = ctx.emit("Slice", [x, ctx.const([crop[0][0], crop[1][0]], "starts", np.int64),
                               ctx.const([sizes[0] - crop[0][1], sizes[1] - crop[1][1]], "ends", np.int64),
                               ctx.const([2, 3], "axes", np.int64)])
    kernel = weight.reshape(group, cin // group, cout_g, kh, kw).transpose(0, 2, 1, 3, 4)
    kernel = kernel.reshape(group * cout_g, cin // group, kh, kw)[:, :, ::-1, ::-1]
    inputs = [x, ctx.const(np.ascontiguousarray(kernel), "kernel", weight.dtype)]
    if len(node.input) > 2 and node.input[2]:
        inputs.append(node.input[2])
    positive = [max(b, 0) for b, _ in conv_pads] + [max(e, 0) for _, e in conv_pads]
    ctx.emit("Conv", inputs, out=node.output[0], pads=positive, dilations=dilations, group=group,
             kernel_shape=[kh, kw], strides=[1, 1])


#: This module's rules, listed in verifier.graph.lowering.RULES.
RULES = (resize, conv_transpose)
