"""PyTorch: state_dicts (with an architecture) and, only if trusted, pickled modules.

Files load with ``torch.load(weights_only=True)``, which cannot run code.  A
whole pickled module needs ``weights_only=False``, i.e. executing whatever the
file contains, so it is refused unless the user passes ``trust_pickle``.  Even
then its weights are first read without running anything (:mod:`exporters.torch_pickle`);
it is really unpickled only when neither `--arch` nor a known layout can use them.
Export uses the dynamo exporter with dynamic height and width, falling back to
the legacy TorchScript exporter (opset 17) when dynamo fails.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, Self, cast

import numpy as np

from exporters import architectures
from exporters.base import (
    ExportError,
    ExportRequest,
    ExportResult,
    finish_export,
    quiet_framework,
    require,
    unwrap_state_dict,
)
from exporters.torch_pickle import inert_state_dict
from verifier.errors import first_line

_SUFFIXES = {".pt", ".pth", ".pkl", ".bin", ".ckpt"}
_CHECK_SIZE = 32


class _Module(Protocol):
    """The torch.nn.Module methods used here (torch itself is imported only when an export runs)."""

    def state_dict(self) -> Mapping[str, Any]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = ...) -> object: ...
    def eval(self) -> Self: ...


def load_weights(torch, path: Path, trust_pickle: bool, arch: str | None = None):
    """A state_dict, or a module when the file is a trusted pickle of an architecture verifier does not know.

    A trusted pickled module is first read without running code (:mod:`exporters.torch_pickle`):
    when `arch` is given or its weights match a known layout, its state_dict is enough.  Only
    otherwise is it really unpickled, which needs the author's classes to be importable.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):  # not a pickle at all: corrupt or another format
            raise ExportError(f"cannot read {path} as a PyTorch file: {first_line(exc)}") from exc
        if not trust_pickle:
            raise ExportError(f"{path} is a pickle that runs code when loaded (not plain weights); "
                              "refusing it. Re-save its state_dict, or, if you trust the file's author, "
                              "export it with `verifier export --trust-pickle`") from exc
    except Exception as exc:  # torch.load fails on junk with whatever its parser hits (KeyError, ...)
        raise ExportError(f"cannot read {path} as a PyTorch file: {first_line(exc)}") from exc
    try:
        weights = inert_state_dict(torch, path)
        if arch is not None or architectures.detect({key: tuple(t.shape) for key, t in weights.items()}):
            return weights
    except ExportError:  # not a module's pickle we can read inertly: the real unpickling below decides
        pass
    try:
        return torch.load(path, map_location="cpu", weights_only=False)  # the user trusts this file
    except (ImportError, AttributeError, pickle.UnpicklingError) as exc:
        raise ExportError(f"cannot unpickle {path}: {first_line(exc)} (is the code that defined it importable?)") \
            from exc


def build_module(torch, loaded, request: ExportRequest):
    """(module in eval mode, 'module:factory' or None) with weights loaded strictly, naming the first mismatch."""
    if isinstance(loaded, torch.nn.Module):
        return loaded.eval(), None
    built = architectures.build(unwrap_state_dict(loaded, request.source), request)
    module, weights = cast(_Module, built.model), built.weights  # the torch factory's nn.Module
    expected = module.state_dict()
    for name, tensor in expected.items():
        if name.endswith("num_batches_tracked") and name not in weights:
            weights[name] = tensor  # a training counter older torch versions did not save
    architectures.check_names({name: tuple(t.shape) for name, t in expected.items()}, weights, built.arch)
    module.load_state_dict(weights, strict=True)
    return module.eval(), built.description


def _infer_channels(torch, module) -> int:
    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            return layer.in_channels
    raise ExportError("cannot infer the input channels; pass --input-shape C,H,W")


def _check_input(torch, shape: tuple[int, int, int]):
    """A seeded image-like input for the equivalence check: a smooth random pattern plus mild noise, in [0, 1].

    Not plain uniform noise: trained SR networks can be unstable far from natural images (PAN's
    output reaches 1e20 on uniform noise), where float rounding differences between torch and
    onnxruntime grow without bound and the comparison says nothing about the export.
    """
    rng = np.random.default_rng(0)
    channels, height, width = shape
    coarse = torch.from_numpy(rng.random((1, channels, 5, 5), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=True)
    noise = torch.from_numpy(rng.normal(0.0, 0.05, (1, *shape)).astype(np.float32))
    return torch.clamp(smooth + noise, 0.0, 1.0)


def export_module(torch, module, shape: tuple[int, int, int], request: ExportRequest, target: Path,
                  framework: str, architecture: str) -> ExportResult:
    """Export a built torch module, check it on a seeded (1, *shape) input, write the metadata."""
    example = _check_input(torch, shape)
    exporter = TorchExporter._export(torch, module, example, target)
    with torch.no_grad():
        native = module(example).numpy()
    return finish_export(target, request, native, example.numpy(), framework=framework,
                         framework_version=torch.__version__, exporter=exporter, exporter_version=torch.__version__,
                         layout="NCHW", value_range=(0.0, 1.0), architecture=architecture)


class TorchExporter:
    """torch.onnx.export, dynamo first."""

    name = "torch"
    extra = "torch"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() in _SUFFIXES

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        torch = require("torch", self.extra)
        loaded = load_weights(torch, request.source, request.trust_pickle, request.arch)
        module, architecture = build_module(torch, loaded, request)
        shape = request.input_shape or (_infer_channels(torch, module), _CHECK_SIZE, _CHECK_SIZE)
        return export_module(torch, module, shape, request, target, "torch", architecture)

    @staticmethod
    def _export(torch, module, example, target: Path) -> str:
        """Quietly export (progress and warnings would pollute stdout and one-line errors)."""
        with quiet_framework():
            return TorchExporter._export_loud(torch, module, example, target)

    @staticmethod
    def _export_loud(torch, module, example, target: Path) -> str:
        """Dynamo with dynamic H/W; on failure the legacy exporter. Returns the exporter used."""
        try:
            dims = ({2: torch.export.Dim("height", min=8), 3: torch.export.Dim("width", min=8)},)
            program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=dims,
                                        input_names=["image"], output_names=["restored"])
            program.save(str(target))
            return "torch.onnx.export(dynamo=True)"
        except Exception:  # any dynamo failure: fall back, the equivalence check guards the result
            torch.onnx.export(module, (example,), str(target), dynamo=False, opset_version=17,
                              input_names=["image"], output_names=["restored"],
                              dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "restored": {0: "n", 2: "h", 3: "w"}})
            return "torch.onnx.export(dynamo=False)"
