"""Weight-lineage evidence: does a suspect file carry the owner's convolution kernels?

Fine-tuned, pruned, quantised, converted or re-saved copies keep most of their parent's weights,
while independent trainings of the same architecture share none (their kernels are as unrelated
as two random draws, even after matching channels).  Weights therefore separate copies from
independent models where behaviour cannot: strong models of one task behave alike.

What is compared, and why it survives the usual disguises:

- Every spatial convolution (kernel of at least 9 elements, e.g. 3x3; Conv and ConvTranspose, weights folded from
  initializers through Cast/DequantizeLinear/Transpose/Reshape, so fp16, QDQ int8 and
  framework layouts all reduce to one (out, in, kh, kw) array), and every linear layer (MatMul or
  Gemm with a constant 2-D weight, as transformers' projections and MLPs are exported), read as a
  convolution whose "kernel" is a group of g consecutive inputs (:func:`_linear_as_blocks`).
- Each output channel o is described by the Gram matrix of its kernels over input channels,
  ``G_o = sum_i vec(w_oi) vec(w_oi)^T`` (kh*kw x kh*kw): unchanged when the input channels are
  permuted (the previous layer's hidden-channel permutation), scaled when the row is scaled
  (folded BatchNorm; compared by correlation), close after fine-tuning, pruning or rounding.
- Output channels are matched by the Hungarian algorithm on descriptor correlations
  (hidden-channel permutation of this layer), layers by an order-keeping alignment over
  layers with the same kernel size (a copy wrapped in, or reused as part of, a larger net).
- Descriptors are centred on the layer's mean row first (what every filter of a trained layer
  shares is not evidence).  A layer's score is the Fisher z of its matched rows' mean
  correlation minus the same with the suspect's kernels flipped (chance agreement for this very
  pair, see :func:`_chance`); the model's score is the mean over the owner's layers (an
  unaligned layer counts as zero), turned into a p-value by a null measured on independent real
  models.

The fingerprint stores only the descriptors (:class:`WeightSketch`), never the weights: a row's
Gram matrix fixes its kernels only up to an unknown rotation of the input channels, a different
one for every row, so no working model can be rebuilt from them (tested).  Layers with fewer
than :data:`MIN_INPUT_CHANNELS` inputs are left out (for one input channel the Gram matrix
would give the kernel up to sign).

Linear layers have no spatial kernel, so each output row's inputs are cut into blocks of g and the
blocks play the input channels: the descriptor is the g x g Gram matrix summed over blocks, which
loses the same per-row rotation (at least :data:`MIN_INPUT_CHANNELS` blocks).  Its chance term
shifts the g positions cyclically instead of flipping (a layer's input positions are exchangeable
as a population).  It survives fine-tuning, pruning, rounding, row scaling and permuted outputs,
but not permuted inputs: a hidden permutation of a transformer's MLP or residual stream hides the
layers that read the permuted channels (the convolutions around them still count).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from verifier.method.calibration import MeasuredNull, measured_null
from verifier.method.evidence import Evidence

#: Ops a weight may pass through between its initializer and the convolution.
_FOLDABLE = {"Identity", "Cast", "CastLike", "DequantizeLinear", "Transpose", "Reshape", "Squeeze", "Unsqueeze",
             "Constant"}
#: Layers with fewer input channels are not sketched (see the module docstring).
MIN_INPUT_CHANNELS = 4
#: Fewest output channels for a layer's matching to mean anything.
MIN_OUTPUT_CHANNELS = 4
#: Fewest kernel elements: smaller kernels' descriptors (3 numbers for 2x1) match anything.
MIN_KERNEL_ELEMENTS = 9
_MAX_CORRELATION = 0.999
#: Largest layer (elements) a sketch is computed for, against crafted huge tensors.
MAX_LAYER_ELEMENTS = 1 << 26
#: Most output channels a sketched layer may have, and most layers a sketch keeps (the first ones in graph
#: order): a fingerprint file holds no more, and alignment costs grow with their product.
MAX_ROWS = 4096
MAX_LAYERS = 1024
#: Largest and smallest group of consecutive inputs a linear layer's rows are cut into (see _linear_as_blocks).
MAX_LINEAR_GROUP = 8
MIN_LINEAR_GROUP = 4


@dataclass(frozen=True)
class WeightSketch:
    """Per sketched layer, the normalised Gram descriptor of every output channel.

    `layers[l]` is (out_channels, d) with d = k(k+1)/2 for a k-element kernel; `kernels[l]`
    is the layer's kernel size (kh, kw), which decides which layers may be aligned: (0, g) for a
    linear layer cut into groups of g inputs (no convolution has a zero-height kernel).
    """

    layers: tuple[np.ndarray, ...]
    kernels: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.layers)


#: The sketch of a model with no layer that qualifies: weight evidence is then unavailable.
EMPTY_SKETCH = WeightSketch((), ())


def layer_weights(model: onnx.ModelProto) -> list[np.ndarray]:
    """Every constant float layer weight in graph order: (out, in, kh, kw) for Conv / ConvTranspose, (out, in) for
    linear layers (MatMul or Gemm whose second input is a constant 2-D weight)."""
    folder = _Folder(model.graph)
    weights = []
    for node in model.graph.node:
        weight = _layer_weight(node, folder)
        if weight is not None:
            weights.append(weight)
    return weights


def _layer_weight(node: onnx.NodeProto, folder: _Folder) -> np.ndarray | None:
    """The node's weight in (out, in[, kh, kw]) layout, or None when it is computed at run time (attention's
    MatMuls of two activations), not floating point, or a grouped ConvTranspose."""
    if node.op_type not in ("Conv", "ConvTranspose", "MatMul", "Gemm") or len(node.input) < 2:
        return None
    value = folder.value(node.input[1])
    expected = 4 if node.op_type.startswith("Conv") else 2
    if value is None or value.ndim != expected or not np.issubdtype(value.dtype, np.floating):
        return None
    weight = value.astype(np.float32)
    if node.op_type == "ConvTranspose":
        if _attribute(node, "group", 1) != 1:
            return None
        return weight.transpose(1, 0, 2, 3)  # (in, out, kh, kw) -> (out, in, kh, kw)
    if node.op_type == "Conv" or (node.op_type == "Gemm" and _attribute(node, "transB", 0)):
        return weight
    return weight.T  # x @ B: B is (in, out)


def _attribute(node: onnx.NodeProto, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


class _Folder:
    """Values of tensors that follow from initializers through a few cheap, size-keeping ops.

    Written out in numpy rather than run through onnx's reference evaluator, which lacks
    DequantizeLinear before opset 19 (onnxruntime's quantiser writes opset 13-17 models).
    """

    def __init__(self, graph: onnx.GraphProto) -> None:
        self._initializers = {tensor.name: tensor for tensor in graph.initializer}
        self._producers = {output: node for node in graph.node for output in node.output}

    def value(self, name: str, depth: int = 0) -> np.ndarray | None:
        if name in self._initializers:
            tensor = self._initializers[name]
            return numpy_helper.to_array(tensor) if math.prod(tensor.dims) <= MAX_LAYER_ELEMENTS else None
        node = self._producers.get(name)
        if node is None or node.op_type not in _FOLDABLE or node.domain not in ("", "ai.onnx") or depth > 16:
            return None
        if node.op_type == "Constant":
            tensor = _attribute(node, "value", None)
            return numpy_helper.to_array(tensor) if isinstance(tensor, onnx.TensorProto) else None
        inputs = [self.value(item, depth + 1) if item else None for item in node.input]
        if inputs[0] is None:
            return None
        try:
            return _fold(node, inputs)
        except (ValueError, TypeError, IndexError):  # a malformed chain is simply not a weight we can read
            return None


def _fold(node: onnx.NodeProto, inputs: list[np.ndarray | None]) -> np.ndarray | None:
    x = inputs[0]
    assert x is not None
    op = node.op_type
    if op == "Identity":
        return x
    if op in ("Cast", "CastLike"):
        return x.astype(np.float32)
    if op == "Transpose":
        return x.transpose(_attribute(node, "perm", None))
    if op == "Reshape" and len(inputs) > 1 and inputs[1] is not None:
        shape = [x.shape[i] if d == 0 and i < x.ndim else int(d) for i, d in enumerate(inputs[1])]
        return x.reshape(shape)
    if op in ("Squeeze", "Unsqueeze"):
        axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else _attribute(node, "axes", None)
        if op == "Squeeze":
            return np.squeeze(x, axis=None if axes is None else tuple(int(a) for a in axes))
        for axis in sorted(int(a) % (x.ndim + len(axes)) for a in axes):
            x = np.expand_dims(x, axis)
        return x
    if op == "DequantizeLinear" and len(inputs) > 1 and inputs[1] is not None:
        scale = inputs[1].astype(np.float32)
        zero = inputs[2].astype(np.float32) if len(inputs) > 2 and inputs[2] is not None else np.float32(0)
        if scale.ndim == 1 and x.ndim > 1:  # per-axis
            shape = [1] * x.ndim
            shape[_attribute(node, "axis", 1) % x.ndim] = -1
            scale, zero = scale.reshape(shape), np.reshape(zero, shape) if np.ndim(zero) else zero
        return (x.astype(np.float32) - zero) * scale
    return None


def is_linear(kernel: tuple[int, int]) -> bool:
    """Whether a sketch's kernel key is a linear layer's (0, g) rather than a convolution's (kh, kw)."""
    return kernel[0] == 0


def kernel_elements(kernel: tuple[int, int]) -> int:
    """Positions a layer's descriptor is the Gram matrix of: kh * kw, or g for a linear layer's key (0, g)."""
    kh, kw = kernel
    return kw if is_linear(kernel) else kh * kw


def _descriptors(weight: np.ndarray) -> np.ndarray:
    """Unit-norm, upper-triangular Gram descriptors of each output channel's kernels."""
    out, _, kh, kw = weight.shape
    kernels = weight.reshape(out, -1, kh * kw).astype(np.float64)
    grams = np.einsum("oik,oil->okl", kernels, kernels)
    upper = grams[:, *np.triu_indices(kh * kw)]
    norms = np.linalg.norm(upper, axis=1, keepdims=True)
    return (upper / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def sketch(model: onnx.ModelProto) -> WeightSketch:
    """The sketch of a model's spatial convolutions and linear layers (empty when none qualifies)."""
    return sketch_weights(layer_weights(model))


def sketch_weights(weights: list[np.ndarray]) -> WeightSketch:
    """The sketch of layer weights given in the order the network applies them: (out, in, kh, kw) convolutions,
    (out, in) linear layers; other shapes, layers too small to describe and layers holding NaN or Inf (a crafted
    file's, which no matching could use) are left out."""
    layers, kernels = [], []
    for weight in weights:
        found = _linear_as_blocks(weight) if weight.ndim == 2 else _convolution(weight) if weight.ndim == 4 else None
        if found is not None and found[0].size <= MAX_LAYER_ELEMENTS and len(found[0]) <= MAX_ROWS \
                and np.isfinite(found[0]).all():
            layers.append(_descriptors(found[0]))
            kernels.append(found[1])
        if len(layers) == MAX_LAYERS:
            break
    return WeightSketch(tuple(layers), tuple(kernels))


def _convolution(weight: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """An (out, in, kh, kw) convolution weight and its kernel key (kh, kw), or None when too small to describe."""
    out, inputs, kh, kw = weight.shape
    if kh * kw < MIN_KERNEL_ELEMENTS or inputs < MIN_INPUT_CHANNELS or out < MIN_OUTPUT_CHANNELS:
        return None
    return weight, (kh, kw)


def _linear_as_blocks(weight: np.ndarray) -> tuple[np.ndarray, tuple[int, int]] | None:
    """An (out, in) linear weight as an (out, in // g, 1, g) convolution weight and its kernel key (0, g).

    Each row's inputs are cut into blocks of g consecutive ones, the blocks playing the input channels (the last
    in % g inputs are dropped); g = min(MAX_LINEAR_GROUP, in // MIN_INPUT_CHANNELS) keeps at least
    MIN_INPUT_CHANNELS blocks.  None for fewer than 16 inputs (a descriptor under 10 numbers) or too few rows.
    """
    out, inputs = weight.shape
    group = min(MAX_LINEAR_GROUP, inputs // MIN_INPUT_CHANNELS)
    if group < MIN_LINEAR_GROUP or out < MIN_OUTPUT_CHANNELS:
        return None
    blocks = inputs // group
    return weight[:, :blocks * group].reshape(out, blocks, 1, group), (0, group)


def _centred(descriptors: np.ndarray) -> np.ndarray:
    """Rows minus the layer's mean row, re-normalised: what this row has that the layer's typical row has not."""
    centred = descriptors.astype(np.float64) - descriptors.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.where(norms > 0, norms, 1.0)


def _matched(owner: np.ndarray, suspect: np.ndarray) -> float:
    """Fisher z of the mean correlation of Hungarian-matched rows (both already :func:`_centred`)."""
    correlations = owner @ suspect.T
    from scipy.optimize import linear_sum_assignment  # imported here: see inversion's minimize

    rows, cols = linear_sum_assignment(-correlations)
    return float(np.arctanh(np.clip(correlations[rows, cols].mean(), -_MAX_CORRELATION, _MAX_CORRELATION)))


@functools.cache
def _chance_maps(kernel: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Index maps that turn a descriptor into the descriptor of the same row with its kernel positions moved:
    a convolution's kernels flipped (vertical, horizontal, both), a linear layer's groups (kernel (0, g)) shifted
    cyclically by 1, 2 and 3 positions.  Moving positions permutes the Gram matrix's entries."""
    kh, kw = kernel
    if is_linear(kernel):
        moves = [np.roll(np.arange(kw), shift) for shift in (1, 2, 3)]
    else:
        grid = np.arange(kh * kw).reshape(kh, kw)
        moves = [flipped.ravel() for flipped in (grid[::-1, :], grid[:, ::-1], grid[::-1, ::-1])]
    elements = len(moves[0])
    rows, cols = np.triu_indices(elements)
    position = {(int(a), int(b)): t for t, (a, b) in enumerate(zip(rows, cols, strict=True))}
    maps = []
    for moved in moves:
        pairs = ((int(moved[a]), int(moved[b])) for a, b in zip(rows, cols, strict=True))
        maps.append(np.array([position[(min(pair), max(pair))] for pair in pairs]))
    return tuple(maps)


def _chance(owner: np.ndarray, suspect: np.ndarray, kernel: tuple[int, int]) -> float:
    """The matched-row similarity (:func:`_matched`) this pair of layers reaches by chance.

    Matching always finds some agreement between two layers of one task (their filters come
    from one population), and how much depends on width, kernel size and training.  Flipping the
    suspect's kernels keeps its population (trained filters are flip-symmetric as a population)
    but destroys any row-by-row identity, so the flipped matches measure chance agreement for
    this very pair: independent layers score about 0 whatever the architecture, copies about 3.
    A linear layer's input positions are exchangeable as a population, so shifting them serves the
    same purpose.  Both are :func:`_centred` (centring commutes with moving positions, which only
    reorders entries).  A layer's score is its matched similarity minus this.
    """
    return float(np.mean([_matched(owner, suspect[:, move]) for move in _chance_maps(kernel)]))


def _alignment(scores: np.ndarray) -> list[tuple[int, int]]:
    """Order-keeping pairs (owner layer, suspect layer) maximising the total score (NaN: may not pair)."""
    n, m = scores.shape
    best = np.zeros((n + 1, m + 1))
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            pair = scores[i, j] + best[i + 1, j + 1] if math.isfinite(scores[i, j]) else -math.inf
            best[i, j] = max(best[i + 1, j], best[i, j + 1], pair)
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if math.isfinite(scores[i, j]) and best[i, j] == scores[i, j] + best[i + 1, j + 1]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i, j] == best[i + 1, j]:
            i += 1
        else:
            j += 1
    return pairs


@dataclass(frozen=True)
class WeightComparison:
    """The suspect's weight score against an owner's sketch, and how it was reached."""

    score: float  # mean over the owner's layers of the aligned layers' scores
    aligned_layers: int
    owner_layers: int


#: Most same-kernel layer pairs two sketches are aligned on by exact matching (one Hungarian matching per pair).
#: Every convolutional model measured stays below it (the most, 2,809, between PAN x4 and x3); a transformer's
#: hundreds of linear layers would cost seconds, so beyond it layers are aligned on :func:`_best_rows` instead.
EXACT_ALIGNMENT_PAIRS = 4096


def compare(owner: WeightSketch, suspect: WeightSketch) -> WeightComparison:
    """Align the suspect's layers to the owner's and score them (0 when nothing aligns)."""
    if not owner.layers or not suspect.layers:
        return WeightComparison(0.0, 0, len(owner.layers))
    # Layers are aligned on the raw matched similarity (one matching per pair of layers), and only the
    # aligned pairs pay for the chance estimate (three more): 4x cheaper, and a copy's own layers stand
    # far above any other pairing either way.
    owner_layers, suspect_layers = [_centred(a) for a in owner.layers], [_centred(b) for b in suspect.layers]
    candidates = [(i, j) for i, ka in enumerate(owner.kernels) for j, kb in enumerate(suspect.kernels) if ka == kb]
    similarity = _matched if len(candidates) <= EXACT_ALIGNMENT_PAIRS else _best_rows
    raw = np.full((len(owner.layers), len(suspect.layers)), math.nan)
    for i, j in candidates:
        raw[i, j] = similarity(owner_layers[i], suspect_layers[j])
    pairs = _alignment(np.maximum(raw, 0.0))
    matched = raw if similarity is _matched else {(i, j): _matched(owner_layers[i], suspect_layers[j])
                                                  for i, j in pairs}
    total = sum(matched[i, j] - _chance(owner_layers[i], suspect_layers[j], owner.kernels[i]) for i, j in pairs)
    return WeightComparison(float(total / len(owner.layers)), len(pairs), len(owner.layers))


def _best_rows(owner: np.ndarray, suspect: np.ndarray) -> float:
    """Fisher z of the mean of each owner row's best correlation with any suspect row: :func:`_matched` without the
    one-to-one constraint (an upper bound on it, equal for a copy), one matrix product instead of a matching."""
    best = (owner @ suspect.T).max(axis=1).mean()
    return float(np.arctanh(np.clip(best, -_MAX_CORRELATION, _MAX_CORRELATION)))


#: Floor on the null's standard deviation.  The 11,502 independent real pairs measured spread by
#: 0.012 but their largest score is 0.133, a heavier tail than a normal that narrow: with the
#: floor that largest score has p = 0.06, and the threshold at 0.5% is 0.21 (the weakest real
#: lineage found, between scico's 6- and 17-layer DnCNNs, scores 0.38).
MIN_NULL_STD = 0.08


def null() -> MeasuredNull:
    """The null shipped with verifier (``python -m models.weight_null --write``: independent pairs of real
    third-party models)."""
    return measured_null("weights", MIN_NULL_STD)


def evidence(owner: WeightSketch, suspect: WeightSketch, fpr: float) -> Evidence:
    """Weight-lineage evidence of `suspect` against `owner`, held to false-positive rate `fpr`."""
    return judged(compare(owner, suspect), fpr)


def judged(found: WeightComparison, fpr: float) -> Evidence:
    """A comparison as evidence, held to false-positive rate `fpr` under the shipped null."""
    fitted = null()
    return Evidence(kind="weights", method="weights", score=found.score, threshold=fitted.threshold(fpr),
                    p_value=fitted.p_value(found.score),
                    detail=f"{found.aligned_layers} of the owner's {found.owner_layers} layers aligned")
