"""Lowering passes: rewrite ops that onnxruntime-training cannot differentiate.

ORT 1.19 has no gradient builder (or no CPU gradient kernel) for many ops that
exporters emit.  Each rule here replaces one such node by an equivalent chain of
differentiable ops, using the static shapes of :class:`~verifier.specialise.StaticModel`.
Rules live in small topic modules and register themselves with :func:`lowers`;
:func:`lower` applies them until none applies.  Every rule is tested for equal
outputs and for gradients against finite differences.
"""

from verifier.lowering import (  # noqa: F401  (imported to register their rules)
    activations,
    normalization,
    padding,
    quantization,
    rearrange,
    reductions,
    resample,
    structure,
)
from verifier.lowering.base import LoweringContext, lower, lowerable_ops, lowers

__all__ = ["LoweringContext", "lower", "lowerable_ops", "lowers"]
