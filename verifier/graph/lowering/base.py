"""The lowering interface: rules, the table they are listed in, and the context they build nodes with."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verifier.errors import UnsupportedModelError
from verifier.graph.normalise import default_opset
from verifier.graph.specialise import StaticModel, specialise

#: A rule emits replacement nodes through the context; returning False keeps the node.
Rule = Callable[[onnx.NodeProto, "LoweringContext"], bool | None]
_MAX_ROUNDS = 8


@dataclass(frozen=True)
class LoweringRule:
    """A rule and the default-domain op types it rewrites."""

    op_types: tuple[str, ...]
    apply: Rule

    def __call__(self, node: onnx.NodeProto, ctx: LoweringContext) -> bool | None:
        return self.apply(node, ctx)


def lowers(*op_types: str) -> Callable[[Rule], LoweringRule]:
    """Mark a function as the rule for `op_types`; a topic module lists its rules in its RULES tuple."""

    def mark(rule: Rule) -> LoweringRule:
        return LoweringRule(op_types, rule)

    return mark


def rule_table(rules: Iterable[LoweringRule]) -> dict[str, LoweringRule]:
    """Op type -> its rule.  Two rules for one op type are refused: with registration by import, the later
    one silently replaced the earlier."""
    table: dict[str, LoweringRule] = {}
    for rule in rules:
        for op in rule.op_types:
            if op in table:
                raise ValueError(f"two lowering rules for {op}: {table[op].apply.__qualname__} and "
                                 f"{rule.apply.__qualname__}")
            table[op] = rule
    return table


def attr(node: onnx.NodeProto, name: str, default=None):
    """An attribute's Python value, or `default`."""
    for item in node.attribute:
        if item.name == name:
            return helper.get_attribute_value(item)
    return default


def axis_view(rank: int, axis: int = 1) -> list[int]:
    """Reshape target that lays a 1-D tensor along `axis` of a rank-`rank` tensor: [1, -1, 1, 1]."""
    shape = [1] * rank
    shape[axis % rank] = -1
    return shape


def node_label(node: onnx.NodeProto) -> str:
    """How errors name a node: its op and name (or first output)."""
    return f"{node.op_type} node '{node.name or node.output[0]}'"


class LoweringContext:
    """Shapes, constants and a node builder for one rewrite.

    Rules call :meth:`emit` to append nodes; the last node a rule emits must
    write the replaced node's outputs (pass ``out=``).
    """

    def __init__(self, graph: onnx.GraphProto, shapes: dict[str, tuple[int, ...]], opset: int):
        self.graph = graph
        self.shapes = shapes
        self.opset = opset
        self.constants = {init.name: init for init in graph.initializer}
        self.emitted: list[onnx.NodeProto] = []
        self._taken = {name for node in graph.node for name in (*node.input, *node.output)}
        self._taken |= set(self.constants)
        self._counter = 0

    def shape(self, name: str) -> tuple[int, ...]:
        """Static shape of a tensor."""
        try:
            return self.shapes[name]
        except KeyError:
            raise UnsupportedModelError(f"no static shape known for tensor '{name}'") from None

    def value(self, name: str) -> np.ndarray | None:
        """The value of a constant tensor, or None if it is computed at run time."""
        if not name:
            return None
        init = self.constants.get(name)
        return None if init is None else numpy_helper.to_array(init)

    def fresh(self, hint: str) -> str:
        """A tensor name not used anywhere in the graph."""
        while True:
            self._counter += 1
            name = f"verifier.low.{hint}.{self._counter}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def const(self, array: np.ndarray | float | Sequence, hint: str = "c", dtype=np.float32) -> str:
        """Add an initializer and return its name."""
        name = self.fresh(hint)
        tensor = numpy_helper.from_array(np.asarray(array, dtype=dtype), name)
        self.graph.initializer.append(tensor)
        self.constants[name] = tensor
        self.shapes[name] = tuple(tensor.dims)
        return name

    def emit(self, op: str, inputs: Sequence[str], out: str | None = None,
             shape: Sequence[int] | None = None, **attrs) -> str:
        """Append a node with one output and return that output's name."""
        name = out or self.fresh(op.lower())
        self.emitted.append(helper.make_node(op, list(inputs), [name], **attrs))
        if shape is not None:
            self.shapes[name] = tuple(int(d) for d in shape)
        return name

    def reshape(self, x: str, shape: Sequence[int], out: str | None = None) -> str:
        """Reshape to a static shape."""
        return self.emit("Reshape", [x, self.const(list(shape), "shape", np.int64)], out, shape)

    def transpose(self, x: str, perm: Sequence[int], out: str | None = None) -> str:
        """Transpose, tracking the static shape."""
        shape = [self.shape(x)[p] for p in perm] if x in self.shapes else None
        return self.emit("Transpose", [x], out, shape, perm=list(perm))

    def reduce(self, op: str, x: str, axes: Sequence[int], keepdims: bool = True,
               out: str | None = None) -> str:
        """ReduceMean/ReduceSum over `axes`, in the form the model's opset wants."""
        axes_input = (op == "ReduceSum" and self.opset >= 13) or self.opset >= 18
        if axes_input:
            return self.emit(op, [x, self.const(list(axes), "axes", np.int64)], out,
                             keepdims=int(keepdims))
        return self.emit(op, [x], out, axes=list(axes), keepdims=int(keepdims))

    def along_axis(self, x: str, rank: int, axis: int = 1) -> str:
        """View a 1-D tensor (per channel, per axis) so it broadcasts against rank `rank` on `axis`."""
        view = axis_view(rank, axis)
        value = self.value(x)
        if value is not None:
            return self.const(value.reshape(view), "per_axis", value.dtype)
        return self.reshape(x, [d if d != -1 else self.shape(x)[0] for d in view])


def lower(static: StaticModel, rules: Mapping[str, LoweringRule]) -> StaticModel:
    """Apply `rules` (and input de-duplication) until the graph no longer changes.

    After a round that changed the graph it is specialised again, so rules in the
    next round see the static shapes of tensors that the previous round created.
    """
    opset = default_opset(static.model)
    for _ in range(_MAX_ROUNDS):
        model = onnx.ModelProto()
        model.CopyFrom(static.model)
        ctx = LoweringContext(model.graph, dict(static.shapes), opset)
        nodes: list[onnx.NodeProto] = []
        changed = False
        for node in model.graph.node:
            rule = rules.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            ctx.emitted = []
            if rule is not None and rule(node, ctx) is not False:
                nodes.extend(ctx.emitted)
                changed = True
            else:
                nodes.append(node)
        del model.graph.node[:]
        model.graph.node.extend(_deduplicate_inputs(nodes, ctx))
        if not changed:
            return StaticModel(model=model, shapes=ctx.shapes, input_shape=static.input_shape)
        static = specialise(model, static.input_shape)
    raise UnsupportedModelError("lowering passes did not converge")


def _deduplicate_inputs(nodes: list[onnx.NodeProto], ctx: LoweringContext) -> list[onnx.NodeProto]:
    """A node reading one tensor twice (Mul(x, x)) breaks ORT's gradient builder: copy it first."""
    result: list[onnx.NodeProto] = []
    for node in nodes:
        seen: set[str] = set()
        for index, name in enumerate(node.input):
            if name and name in seen and name not in ctx.constants:
                copy = ctx.fresh("dup")
                result.append(helper.make_node("Identity", [name], [copy]))
                if name in ctx.shapes:
                    ctx.shapes[copy] = ctx.shapes[name]
                node.input[index] = copy
            seen.add(name)
        result.append(node)
    return result
