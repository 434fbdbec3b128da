"""Flax msgpack checkpoints -> ONNX.

`flax.serialization.msgpack_restore` reads msgpack with NumPy arrays as
extension types: plain data, no pickle, no code.  Checkpoints of our own Flax
DnCNN (:mod:`exporters.architectures.flax_nets`) are run in JAX and converted
with jax2onnx, so the ONNX file is JAX's computation, checked against JAX's own
output.  The other checkpoints we know are
scico's DnCNN (lanl/scico-data: `params` + `batch_stats`; bias-free 3x3 convs
with circular padding, BatchNorm eps 1e-5, ReLU, output = input - noise), which
we rebuild as :class:`exporters.architectures.torch_nets.DnCNN` and export with
the PyTorch exporter.  Flax kernels are HWIO; torch's are OIHW.  The equivalence
check compares the ONNX file with the PyTorch rebuild; the tests check that the
exported models denoise.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from exporters.base import ExportError, ExportRequest, ExportResult, finish_export, quiet_framework, require, version
from verifier.errors import first_line

_SUFFIXES = {".msgpack", ".mpk"}
_CHECK_SIZE = 32
_JAX2ONNX_SPEC = ("N", "H", "W")  # symbolic batch, height and width; channels are fixed
_OPSET = 21  # jax2onnx's default (23) is newer than onnxruntime 1.19 runs
_BLOCK = re.compile(r"ConvBNBlock_(\d+)")


def read_msgpack(path: Path) -> dict:
    """The checkpoint's nested dict of arrays."""
    serialization = require("flax.serialization", "jax")
    try:
        state = serialization.msgpack_restore(path.read_bytes())
    except Exception as exc:  # msgpack raises several untyped errors on corrupt input
        raise ExportError(f"cannot read {path} as a Flax msgpack checkpoint: {first_line(exc)}") from exc
    if not isinstance(state, dict) or "params" not in state:
        raise ExportError(f"{path}: not a Flax checkpoint with 'params'")
    return state


def scico_dncnn_layout(state: dict, path: Path) -> tuple[int, int, int]:
    """(channels, depth, width) of a scico DnCNN checkpoint, or a one-line refusal."""
    params = state["params"]
    if not {"conv_start", "conv_end"} <= set(params) or "batch_stats" not in state:
        raise ExportError(f"{path}: Flax parameters of an architecture verifier does not know "
                          f"({', '.join(sorted(params)[:5])})")
    blocks = sorted(int(m.group(1)) for key in params if (m := _BLOCK.fullmatch(key)))
    if blocks != list(range(len(blocks))):
        raise ExportError(f"{path}: ConvBNBlock numbering has gaps")
    height, width_k, channels, width = np.asarray(params["conv_start"]["kernel"]).shape
    if (height, width_k) != (3, 3):
        raise ExportError(f"{path}: conv_start kernel is {height}x{width_k}, expected 3x3")
    return channels, len(blocks) + 2, width


def _oihw(kernel) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(kernel, dtype=np.float32).transpose(3, 2, 0, 1))


class FlaxExporter:
    """Flax msgpack checkpoints of scico's DnCNN."""

    name = "flax"
    extra = "jax"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() in _SUFFIXES

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        state = read_msgpack(request.source)
        require("flax.linen", self.extra)
        from exporters.architectures import flax_nets

        fields = flax_nets.dncnn_layout(state)
        if fields is not None:
            return _export_jax(flax_nets.DnCNN(**fields), state, request, target)
        torch = require("torch", "torch")
        from exporters.architectures.torch_nets import DnCNN
        from exporters.torch_exporter import export_module

        channels, depth, width = scico_dncnn_layout(state, request.source)
        module = DnCNN(channels=channels, depth=depth, width=width, batch_norm=True, bias=False,
                       padding_mode="circular").eval()
        convs = [m for m in module.body if isinstance(m, torch.nn.Conv2d)]
        norms = [m for m in module.body if isinstance(m, torch.nn.BatchNorm2d)]
        params, stats = state["params"], state["batch_stats"]
        kernels = [params["conv_start"]["kernel"], *(params[f"ConvBNBlock_{i}"]["Conv_0"]["kernel"]
                                                     for i in range(depth - 2)), params["conv_end"]["kernel"]]
        with torch.no_grad():
            for conv, kernel in zip(convs, kernels, strict=True):
                weight = _oihw(kernel)
                if tuple(conv.weight.shape) != weight.shape:
                    raise ExportError(f"{request.source}: kernel {list(weight.shape)} does not fit "
                                      f"{list(conv.weight.shape)}")
                conv.weight.copy_(torch.from_numpy(weight))
            for index, norm in enumerate(norms):
                block = f"ConvBNBlock_{index}"
                for target_tensor, value in ((norm.weight, params[block]["BatchNorm_0"]["scale"]),
                                             (norm.bias, params[block]["BatchNorm_0"]["bias"]),
                                             (norm.running_mean, stats[block]["BatchNorm_0"]["mean"]),
                                             (norm.running_var, stats[block]["BatchNorm_0"]["var"])):
                    target_tensor.copy_(torch.from_numpy(np.asarray(value, dtype=np.float32)))
        return export_module(torch, module, (channels, _CHECK_SIZE, _CHECK_SIZE), request, target,
                             "flax (scico DnCNN, rebuilt in torch)",
                             f"exporters.architectures.torch_nets:DnCNN(channels={channels}, depth={depth}, "
                             f"width={width}, bias=False, padding_mode='circular')")


def _export_jax(model, variables: dict, request: ExportRequest, target: Path) -> ExportResult:
    """Convert `model.apply(variables, .)` with jax2onnx (NHWC, dynamic N/H/W) and check it against JAX."""
    jax = require("jax", "jax")
    jax2onnx = require("jax2onnx", "jax")
    import onnx

    def restore(image):
        return model.apply(variables, image)

    with quiet_framework():
        proto = jax2onnx.to_onnx(restore, [(*_JAX2ONNX_SPEC, model.channels)], input_names=["image"],
                                 output_names=["restored"], opset=_OPSET)
        example = np.random.default_rng(0).random((1, _CHECK_SIZE, _CHECK_SIZE, model.channels), dtype=np.float32)
        native = np.asarray(restore(example))
    onnx.save(proto, str(target))
    fields = ", ".join(f"{name}={getattr(model, name)!r}" for name in ("channels", "depth", "width", "batch_norm",
                                                                        "bias"))
    return finish_export(target, request, native, example, framework="jax", framework_version=jax.__version__,
                         exporter="jax2onnx.to_onnx", exporter_version=version("jax2onnx"), layout="NHWC",
                         value_range=(0.0, 1.0), architecture=f"exporters.architectures.flax_nets:DnCNN({fields})")
