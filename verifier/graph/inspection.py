"""What `verifier inspect` reports about a model: I/O, opsets, ops, gradient availability."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from verifier.errors import GradientUnavailableError
from verifier.graph.io_spec import PROBE_SIZE, ImageIO
from verifier.graph.lowering import lowerable_ops
from verifier.graph.model import Model


@dataclass(frozen=True)
class Inspection:
    """A model's description, ready for text or JSON."""

    path: str
    sha256: str
    producer: str
    ir_version: int
    opsets: dict[str, int]
    io: ImageIO
    op_counts: dict[str, int]
    probe_shape: tuple[int, int, int, int]
    gradient_available: bool
    lowered_ops: list[str]
    gradient_blockers: list[str]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    def to_text(self) -> str:
        """Aligned human-readable lines."""
        io = self.io
        size = f"{io.height}x{io.width}" if io.height else "any size"
        lines = [
            f"model      {self.path}",
            f"sha256     {self.sha256}",
            f"producer   {self.producer or 'unknown'}, IR {self.ir_version}, "
            + ", ".join(f"{domain or 'ai.onnx'} {version}" for domain, version in self.opsets.items()),
            f"input      '{io.input_name}' {io.layout} (from {io.layout_source}), {io.channels} channel(s), "
            f"{size}, range [{io.value_range[0]:g}, {io.value_range[1]:g}]",
            f"output     '{io.output_name}' {io.out_channels} channel(s), scale x{io.scale}",
            "ops        " + ", ".join(f"{op} x{count}" for op, count in self.op_counts.items()),
        ]
        shape = "x".join(map(str, self.probe_shape))
        if self.gradient_available:
            lowered = f" (lowered: {', '.join(self.lowered_ops)})" if self.lowered_ops else ""
            lines.append(f"gradient   available at {shape}{lowered}")
        else:
            lines.append(f"gradient   UNAVAILABLE at {shape}:")
            lines.extend(f"           - {reason}" for reason in self.gradient_blockers)
        return "\n".join(lines)


def inspect_model(model: Model) -> Inspection:
    """Describe `model`, trying to build its input gradient at a probe size."""
    original = model.original if model.original is not None else model.graph
    io = model.io
    probe = (1, io.channels, io.height or PROBE_SIZE, io.width or PROBE_SIZE)
    model.run(np.full(probe, 0.5, np.float32))  # a model whose output is NaN or Inf is refused here, not later
    blockers: list[str] = []
    lowered: list[str] = []
    try:
        blockers = model.gradient_blockers(probe)
    except GradientUnavailableError as exc:
        blockers = [str(exc)]
    if not blockers:
        before = {node.op_type for node in model.graph.graph.node}
        after = {node.op_type for node in model.static(probe).model.graph.node}
        lowered = sorted((before - after) & lowerable_ops())
    counts = Counter(node.op_type for node in original.graph.node)
    return Inspection(
        path=str(model.source.path) if model.source else "",
        sha256=model.source.sha256 if model.source else "",
        producer=" ".join(p for p in (original.producer_name, original.producer_version) if p),
        ir_version=original.ir_version,
        opsets={entry.domain: entry.version for entry in original.opset_import},
        io=io,
        op_counts=dict(counts.most_common()),
        probe_shape=probe,
        gradient_available=not blockers,
        lowered_ops=lowered,
        gradient_blockers=blockers,
    )
