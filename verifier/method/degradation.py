"""The degradation D a restoration model undoes, written as ONNX nodes.

Model inversion asks for an image x that the model restores from D(x).  D must
live in the same graph as the model and the loss so that one onnxruntime call
returns the loss and its gradient; this module emits it as the `before` part of
an :class:`~verifier.graph.objective.Objective` (from `VARIABLE` to `MODEL_IN`).

Everything random in D (the noise image) is drawn from a recorded seed, so the
owner's and the suspect's inversions see exactly the same degradation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verifier.errors import InputError
from verifier.graph.io_spec import ImageIO
from verifier.graph.objective import MODEL_IN, VARIABLE, before_graph
from verifier.graph.runtime import make_session

Kind = Literal["downsample", "noise", "blur", "identity"]
KINDS: tuple[Kind, ...] = ("downsample", "noise", "blur", "identity")
#: Default noise level for denoisers, in [0, 1] units (25 on the 0-255 scale).
DEFAULT_SIGMA = 25 / 255
#: Default Gaussian blur standard deviation in pixels for deblurring models.
DEFAULT_BLUR_SIGMA = 1.6


@dataclass(frozen=True)
class Degradation:
    """What D does: `downsample` by `scale` (average pooling), add seeded Gaussian `noise`
    of std `sigma`, Gaussian `blur` of std `sigma` pixels, or nothing (`identity`)."""

    kind: Kind
    scale: int = 1
    sigma: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown degradation '{self.kind}' (expected one of {', '.join(KINDS)})")
        if self.scale < 1 or (self.kind == "downsample") != (self.scale > 1):
            raise InputError(f"degradation '{self.kind}' cannot have scale {self.scale}")
        if self.kind in ("noise", "blur") and not self.sigma > 0:
            raise InputError(f"degradation '{self.kind}' needs sigma > 0, got {self.sigma}")

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Degradation:
        """Inverse of :meth:`to_dict`."""
        return cls(kind=data["kind"], scale=int(data["scale"]), sigma=float(data["sigma"]), seed=int(data["seed"]))

    def describe(self) -> str:
        """Short human-readable form, e.g. 'x4 average pooling'."""
        return {
            "downsample": f"x{self.scale} average pooling",
            "noise": f"Gaussian noise sigma {self.sigma * 255:.3g}/255",
            "blur": f"Gaussian blur sigma {self.sigma:.3g} px",
            "identity": "identity",
        }[self.kind]


def default_degradation(io: ImageIO, kind: Kind | None = None, sigma: float | None = None) -> Degradation:
    """The degradation a model with this I/O most likely undoes, overridable by the caller.

    A model that enlarges its input by s is a super-resolver (D = s x s average
    pooling); a same-size model is taken for a denoiser unless told otherwise.
    """
    if io.scale > 1:
        if kind not in (None, "downsample"):
            raise InputError(f"an x{io.scale} model needs the 'downsample' degradation, not '{kind}'")
        return Degradation("downsample", scale=io.scale)
    kind = kind or "noise"
    if kind == "downsample":
        raise InputError("the 'downsample' degradation needs a model that enlarges its input")
    if kind == "noise":
        return Degradation("noise", sigma=DEFAULT_SIGMA if sigma is None else sigma)
    if kind == "blur":
        return Degradation("blur", sigma=DEFAULT_BLUR_SIGMA if sigma is None else sigma)
    return Degradation("identity")


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 2-D Gaussian of radius ceil(3 sigma)."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = np.outer(taps, taps)
    return (kernel / kernel.sum()).astype(np.float32)


def degradation_graph(degradation: Degradation, shape: tuple[int, int, int, int],
                      prefix: str = "D/") -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes and constants computing MODEL_IN = D(VARIABLE) for a variable of NCHW `shape`."""
    _, channels, height, width = shape
    if degradation.kind == "identity":
        return [helper.make_node("Identity", [VARIABLE], [MODEL_IN])], []
    if degradation.kind == "downsample":
        s = degradation.scale
        if height % s or width % s:
            raise InputError(f"image size {height}x{width} is not a multiple of the scale {s}")
        return [helper.make_node("AveragePool", [VARIABLE], [MODEL_IN], kernel_shape=[s, s], strides=[s, s])], []
    if degradation.kind == "noise":
        noise = np.random.default_rng(degradation.seed).normal(0, degradation.sigma, shape).astype(np.float32)
        init = numpy_helper.from_array(noise, prefix + "noise")
        return [helper.make_node("Add", [VARIABLE, init.name], [MODEL_IN])], [init]
    kernel = gaussian_kernel(degradation.sigma)
    radius = kernel.shape[0] // 2
    weight = np.ascontiguousarray(np.broadcast_to(kernel, (channels, 1, *kernel.shape)))
    init = numpy_helper.from_array(weight, prefix + "blur")
    return [helper.make_node("Conv", [VARIABLE, init.name], [MODEL_IN], group=channels,
                             pads=[radius] * 4)], [init]


def degrade(degradation: Degradation, images: np.ndarray) -> np.ndarray:
    """D applied to an NCHW batch by the same ONNX nodes the inversion differentiates (one image per run,
    as the noise image has the shape of one)."""
    shape = (1, *images.shape[1:])
    nodes, inits = degradation_graph(degradation, shape)
    session = make_session(before_graph(nodes, inits, shape, [helper.make_opsetid("", 17)], 8).SerializeToString())
    return np.concatenate([session.run([MODEL_IN], {VARIABLE: image[None].astype(np.float32)})[0]
                           for image in images])
