"""`Model`: a loaded image-to-image network with forward, VJP and loss gradients.

This is the object every later stage receives.  It holds the canonical graph
(float32 NCHW in [0, 1], see :mod:`verifier.graph.adapters`) and builds, per objective
and input shape, a specialised, lowered, differentiated onnxruntime session,
cached so that an optimisation loop pays for graph building once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from verifier.errors import InputError, UnsupportedModelError, first_line
from verifier.graph import adapters, io_spec
from verifier.graph.gradient import GRAD, check_finite, compose, gradient_blockers, gradient_session
from verifier.graph.lowering import lower
from verifier.graph.normalise import normalise
from verifier.graph.objective import LOSS, MODEL_IN, VARIABLE, Objective, before_graph, vjp_objective
from verifier.graph.onnx_file import ModelSource, read_onnx
from verifier.graph.runtime import Session, make_session
from verifier.graph.specialise import StaticModel, nchw, specialise
from verifier.graph.suspect import restore_on_canvas

_VJP = vjp_objective()
#: Ops whose fused onnxruntime kernels are machine-dependent (see make_session's `exact`).
_QUANTISATION_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


@dataclass
class Model:
    """A model ready for inference and input gradients.

    `threads` sets onnxruntime's intra-op threads (None: onnxruntime's default).
    """

    graph: onnx.ModelProto
    io: io_spec.ImageIO
    source: ModelSource | None = None
    threads: int | None = None
    original: onnx.ModelProto | None = field(default=None, repr=False)
    _forward: Session | None = field(default=None, repr=False)
    _static: dict[tuple[int, ...], StaticModel] = field(default_factory=dict, repr=False)
    _input_shapes: dict[tuple[str, tuple[int, ...]], tuple[int, int, int, int]] = field(
        default_factory=dict, repr=False)
    _gradients: dict[tuple[str, tuple[int, ...]], Session] = field(default_factory=dict, repr=False)

    # -- inference -----------------------------------------------------------------
    def check_input(self, x: np.ndarray) -> np.ndarray:
        """Validate an NCHW float image batch for this model."""
        x = np.asarray(x)
        self.io.check_batch(x)
        fixed = (self.io.height, self.io.width)
        if any(f is not None and f != got for f, got in zip(fixed, x.shape[2:], strict=True)):
            raise InputError(f"model needs {fixed[0]}x{fixed[1]} images, got {x.shape[2]}x{x.shape[3]}")
        if not np.isfinite(x).all():
            raise InputError("input contains NaN or Inf")
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        """f(x) for an NCHW batch in [0, 1]."""
        x = self.check_input(x)
        if self._forward is None:
            quantised = any(node.op_type in _QUANTISATION_OPS for node in self.graph.graph.node)
            self._forward = make_session(self.graph.SerializeToString(), self.threads, exact=quantised)
        try:
            (y,) = self._forward.run(None, {adapters.X: x})
        except Exception as exc:  # onnxruntime raises untyped errors
            raise UnsupportedModelError(f"model failed on input {list(x.shape)}: {first_line(exc)}") from exc
        return check_finite("its output", y)

    def restore(self, x: np.ndarray) -> np.ndarray:
        """f(x) for images of any size up to a fixed-size model's canvas (see
        :func:`~verifier.graph.suspect.restore_on_canvas`); other models run the image as it is."""
        return restore_on_canvas(self.run, self.io, x)

    # -- gradients ------------------------------------------------------------------
    def static(self, input_shape: tuple[int, int, int, int]) -> StaticModel:
        """The model fixed to `input_shape` and lowered to differentiable ops (cached)."""
        key = nchw(input_shape)
        if key not in self._static:
            self._static[key] = lower(specialise(self.graph, key))
        return self._static[key]

    def _model_input_shape(self, objective: Objective, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        if not objective.before:
            return nchw(shape)
        key = (objective.digest, shape)
        if key not in self._input_shapes:
            probe = before_graph(objective.before, objective.initializers, shape, list(self.graph.opset_import),
                                 self.graph.ir_version)
            session = make_session(probe.SerializeToString())
            (out,) = session.run([MODEL_IN], {VARIABLE: np.zeros(shape, np.float32)})
            self._input_shapes[key] = nchw(out.shape)
        return self._input_shapes[key]

    def composed(self, objective: Objective, shape: tuple[int, ...]) -> onnx.ModelProto:
        """The single graph objective.before -> model -> objective.after for a variable of `shape`."""
        return compose(self.static(self._model_input_shape(objective, shape)), objective, shape)

    def _gradient_session(self, objective: Objective, shape: tuple[int, ...]) -> Session:
        key = (objective.digest, shape)
        if key not in self._gradients:
            self._gradients[key] = gradient_session(self.composed(objective, shape), self.threads)
        return self._gradients[key]

    def value_and_grad(self, objective: Objective, x: np.ndarray,
                       feeds: dict[str, np.ndarray] | None = None) -> tuple[float, np.ndarray]:
        """(loss, d loss / d x) in one session call."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        feeds = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in (feeds or {}).items()}
        missing = set(objective.inputs) - set(feeds)
        if missing:
            raise InputError(f"objective '{objective.name}' needs inputs {sorted(missing)}")
        session = self._gradient_session(objective, tuple(x.shape))
        try:
            loss, grad = session.run([LOSS, GRAD], {VARIABLE: x, **feeds})
        except Exception as exc:  # onnxruntime raises untyped errors
            raise InputError(f"gradient evaluation failed: {first_line(exc)}") from exc
        check_finite("the loss", loss)
        return float(loss), check_finite("the gradient", grad)

    def vjp(self, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """d sum(dy * f(x)) / dx."""
        x = self.check_input(x)
        dy = np.asarray(dy, dtype=np.float32)
        expected = (x.shape[0], self.io.out_channels, x.shape[2] * self.io.scale, x.shape[3] * self.io.scale)
        if dy.shape != expected:
            raise InputError(f"dy must have shape {list(expected)}, got {list(dy.shape)}")
        return self.value_and_grad(_VJP, x, {"dy": dy})[1]

    def gradient_blockers(self, input_shape: tuple[int, int, int, int]) -> list[str]:
        """Why input gradients are unavailable at `input_shape` (empty list: they are available)."""
        return gradient_blockers(self.composed(_VJP, tuple(input_shape)), self.static(input_shape).shapes)


def model_from_proto(
    original: onnx.ModelProto,
    layout: io_spec.Layout | None = None,
    value_range: tuple[float, float] | None = None,
    threads: int | None = None,
    source: ModelSource | None = None,
) -> Model:
    """Normalise and describe an in-memory ONNX model; wrap it in the canonical convention."""
    normalised = normalise(original)
    io = io_spec.describe(normalised, layout=layout, value_range=value_range)
    return Model(graph=adapters.canonicalise(normalised, io), io=io, source=source, threads=threads,
                 original=original)


def load_model(
    path: str | Path,
    layout: io_spec.Layout | None = None,
    value_range: tuple[float, float] | None = None,
    threads: int | None = None,
) -> Model:
    """Read an ONNX file safely, then :func:`model_from_proto`."""
    original, source = read_onnx(path)
    return model_from_proto(original, layout, value_range, threads, source)
