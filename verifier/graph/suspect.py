"""What verification needs from a suspect, whatever stands behind it.

A suspect is asked for three things: its image I/O (channels and scale, to refuse a model that cannot be
compared with the owner's), its outputs on the owner's probes (the behavioural evidence), and its ONNX graph
when there is one (the weight evidence).  A model file (:class:`verifier.graph.model.Model`) has all three; a
service answering inference requests (:class:`verifier.remote.endpoint.EndpointModel`) has no graph, so its
verdict rests on behaviour alone.  Declaring the interface here, rather than giving an endpoint a fake ONNX
graph, keeps "what we know about the suspect" honest: `original` is None exactly when weights are unknown.

Fixed-size models and endpoints share one canvas rule (:func:`restore_on_canvas`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import onnx

from verifier.errors import InputError
from verifier.graph.io_spec import ImageIO


class Suspect(Protocol):
    """A model verification can question: its I/O, f(x) for probes of any size, and its graph if known."""

    io: ImageIO

    @property
    def original(self) -> onnx.ModelProto | None:
        """The suspect's own graph; None when only its outputs are known (read-only here, so that a model file's
        field and an endpoint's constant None both fit)."""
        ...

    def restore(self, x: np.ndarray) -> np.ndarray:
        """f(x) for an NCHW float32 batch in [0, 1], of any size up to a fixed-size model's canvas."""
        ...


def restore_on_canvas(run: Callable[[np.ndarray], np.ndarray], io: ImageIO, x: np.ndarray) -> np.ndarray:
    """`run(x)` for images of any size up to a fixed-size model's canvas.

    A model exported with a fixed input size (a TFLite file made for 720x480 frames, a service that takes
    one frame size) cannot take a probe of another size: the probe is mirrored out to the canvas (symmetric
    padding right and below, so the probe's pixels keep their place), run, and the output cropped to the
    probe's own area.  Other models run the image as it is.
    """
    fixed = (io.height, io.width)
    height, width = x.shape[2:]
    if all(f is None or f == got for f, got in zip(fixed, (height, width), strict=True)):
        return run(x)
    canvas = [f if f is not None else got for f, got in zip(fixed, (height, width), strict=True)]
    if canvas[0] < height or canvas[1] < width:
        raise InputError(f"model needs {fixed[0]}x{fixed[1]} images; a {height}x{width} probe does not fit")
    padded = np.pad(x, ((0, 0), (0, 0), (0, canvas[0] - height), (0, canvas[1] - width)), mode="symmetric")
    return run(padded)[:, :, : height * io.scale, : width * io.scale]
