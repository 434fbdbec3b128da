"""MATLAB v7.3 MatConvNet files -> ONNX (through our PyTorch rebuild).

v7.3 .mat files are HDF5, read here with h5py only (no MATLAB, no code runs).
MatConvNet's `net.layers` is a list of structs; DnCNN files (cszn/DnCNN) are a
plain stack of 3x3 'conv' (BN folded into them) and 'relu' layers predicting the
noise, which the MATLAB demo subtracts from the input: we rebuild exactly that
as :class:`exporters.architectures.torch_nets.DnCNN` without BN and export it
with the PyTorch exporter.  MATLAB stores arrays column-major, so h5py sees
every array with its dimensions reversed.  MATLAB itself is not available: the
equivalence check compares the ONNX file with the PyTorch rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporters import isolated
from exporters.base import HDF5_ERRORS, ExportError, ExportRequest, ExportResult, require
from verifier.errors import first_line

_CHECK_SIZE = 32


@dataclass(frozen=True)
class MatConvLayer:
    """One MatConvNet layer: its type and, for convs, torch-ordered weight (O, I, kH, kW) and bias."""

    type: str
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None


def _text(dataset) -> str:
    return "".join(chr(int(c)) for c in np.asarray(dataset).ravel())


def read_matconvnet(path: Path) -> list[MatConvLayer]:
    """`net.layers` of a v7.3 MatConvNet file; only 3x3, stride-1, pad-1 convs and ReLUs are accepted."""
    return isolated.call(_read_matconvnet, path, what=str(path))


def _read_matconvnet(path: Path) -> list[MatConvLayer]:
    h5py = require("h5py", "tensorflow")
    layers = []
    try:
        with h5py.File(path, "r") as handle:
            refs = handle["net"]["layers"]
            if not isinstance(refs, h5py.Dataset) or refs.ndim != 2:
                raise ExportError(f"{path}: net.layers is not a MATLAB cell array")
            for index in range(refs.shape[0]):
                struct = handle[refs[index, 0]]
                kind = _text(struct["type"])
                if kind == "relu":
                    if float(np.asarray(struct["leak"]).ravel()[0]) != 0.0:
                        raise ExportError(f"{path}: layer {index + 1} is a leaky ReLU, which is not supported")
                    layers.append(MatConvLayer("relu"))
                    continue
                if kind != "conv":
                    raise ExportError(f"{path}: MatConvNet layer {index + 1} has type '{kind}'; "
                                      "only conv/relu networks (DnCNN) are supported")
                pad = np.asarray(struct["pad"]).ravel()
                stride = np.asarray(struct["stride"]).ravel()
                weight = np.asarray(handle[struct["weights"][0, 0]], dtype=np.float32)
                bias = np.asarray(handle[struct["weights"][1, 0]], dtype=np.float32).ravel()
                if weight.ndim == 3:  # MATLAB drops a trailing singleton output dimension
                    weight = weight[None]
                weight = weight.transpose(0, 1, 3, 2)  # reversed [kH kW I O] -> torch (O, I, kH, kW)
                if weight.shape[2:] != (3, 3) or set(pad) != {1.0} or set(stride) != {1.0}:
                    raise ExportError(f"{path}: conv layer {index + 1} is not 3x3 with stride 1 and pad 1")
                layers.append(MatConvLayer("conv", weight, bias))
    except HDF5_ERRORS as exc:
        raise ExportError(f"cannot read {path} as a MATLAB v7.3 MatConvNet network: {first_line(exc)}") from exc
    return layers


def _dncnn_depth(layers: list[MatConvLayer], path: Path) -> tuple[int, int, int]:
    """(channels, depth, width) when the layers alternate conv/relu and end with a conv."""
    kinds = [layer.type for layer in layers]
    depth = kinds.count("conv")
    if kinds != ["conv", "relu"] * (depth - 1) + ["conv"] or depth < 3:
        raise ExportError(f"{path}: layers are not a DnCNN conv/relu stack ({' '.join(kinds[:6])} ...)")
    first = layers[0].weight
    assert first is not None  # a conv (checked above), and read_matconvnet gives every conv its weight
    return first.shape[1], depth, first.shape[0]


class MatlabExporter:
    """MatConvNet DnCNN networks saved by MATLAB (-v7.3)."""

    name = "matlab"
    extra = "torch"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() == ".mat"

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        torch = require("torch", self.extra)
        from exporters.architectures.torch_nets import DnCNN
        from exporters.torch_exporter import export_module

        layers = read_matconvnet(request.source)
        channels, depth, width = _dncnn_depth(layers, request.source)
        module = DnCNN(channels=channels, depth=depth, width=width, batch_norm=False).eval()
        convs = [m for m in module.body if isinstance(m, torch.nn.Conv2d)]
        with torch.no_grad():
            for conv, layer in zip(convs, (layer for layer in layers if layer.type == "conv"), strict=True):
                assert layer.weight is not None and layer.bias is not None  # read_matconvnet sets both for convs
                if tuple(conv.weight.shape) != layer.weight.shape or conv.bias.numel() != layer.bias.size:
                    raise ExportError(f"{request.source}: conv weight {list(layer.weight.shape)} does not fit "
                                      f"{list(conv.weight.shape)}")
                conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight)))
                conv.bias.copy_(torch.from_numpy(layer.bias))
        return export_module(torch, module, (channels, _CHECK_SIZE, _CHECK_SIZE), request, target,
                             "matlab (MatConvNet, rebuilt in torch)",
                             f"exporters.architectures.torch_nets:DnCNN(channels={channels}, depth={depth}, "
                             f"width={width}, batch_norm=False)")
