"""Weight-lineage evidence on conv chains built in-process: what it survives, what it refuses to see, and
what its sketch gives away."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from builders import chain_weights, conv_chain
from onnx import TensorProto, helper, numpy_helper

from verifier.graph.runtime import make_session
from verifier.method import weights


def _score(owner: list[np.ndarray], suspect: onnx.ModelProto) -> weights.WeightComparison:
    return weights.compare(weights.sketch(conv_chain(owner)), weights.sketch(suspect))


def _permuted(convs: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """The same network with every hidden layer's channels permuted (function unchanged)."""
    rng = np.random.default_rng(seed)
    out, previous = [], None
    for weight in convs:
        if previous is not None:
            weight = weight[:, previous]
        perm = rng.permutation(weight.shape[0]) if weight.shape[0] > 1 else np.arange(1)
        out.append(weight[perm])
        previous = perm
    return out


def _run(model: onnx.ModelProto, image: np.ndarray) -> np.ndarray:
    return make_session(model.SerializeToString()).run(None, {"img": image})[0]


def _best_factor(descriptor: np.ndarray, elements: int, channels: int) -> np.ndarray:
    """What an attacker rebuilds from one row's descriptor: the factor F of its Gram matrix G = F^T F, one row of F
    per input channel (zeros beyond the matrix's rank): the real rows up to an unknown rotation, at best."""
    gram = np.zeros((elements, elements))
    gram[np.triu_indices(elements)] = descriptor
    gram = gram + gram.T - np.diag(np.diag(gram))
    values, vectors = np.linalg.eigh(gram)
    factor = (vectors * np.sqrt(np.clip(values, 0, None))).T[::-1]
    padded = np.zeros((channels, elements))
    padded[:min(channels, elements)] = factor[:channels]
    return padded


OWNER = chain_weights(0)
IMAGE = np.random.default_rng(9).random((1, 1, 24, 24), dtype=np.float32)


def test_copy_scores_high_and_independent_near_zero():
    same = _score(OWNER, conv_chain(OWNER))
    independent = _score(OWNER, conv_chain(chain_weights(1)))
    # the first and last layers have 1 input / output channel and are not sketched
    assert same.owner_layers == same.aligned_layers == 3
    assert same.score > 2.5
    assert abs(independent.score) < 0.15
    fitted = weights.null()
    assert fitted.p_value(same.score) < 1e-6 and fitted.p_value(independent.score) > 0.01


def test_hidden_channel_permutation_keeps_function_and_score():
    permuted = conv_chain(_permuted(OWNER, 3))
    np.testing.assert_allclose(_run(permuted, IMAGE), _run(conv_chain(OWNER), IMAGE), rtol=1e-4, atol=1e-5)
    assert _score(OWNER, permuted).score == pytest.approx(_score(OWNER, conv_chain(OWNER)).score, abs=1e-6)


def test_row_scaling_like_folded_batchnorm():
    rng = np.random.default_rng(4)
    scaled = [w * rng.uniform(0.2, 3.0, (w.shape[0], 1, 1, 1)).astype(np.float32) for w in OWNER]
    assert _score(OWNER, conv_chain(scaled)).score == pytest.approx(_score(OWNER, conv_chain(OWNER)).score, abs=1e-4)


def _fp16(index, weight, name):
    return ([helper.make_node("Cast", [f"{name}_h"], [name], to=TensorProto.FLOAT)],
            [numpy_helper.from_array(weight.astype(np.float16), f"{name}_h")])


def _qdq_per_channel(index, weight, name):
    scale = (np.abs(weight).reshape(len(weight), -1).max(axis=1) / 127).astype(np.float32)
    quantised = np.clip(np.round(weight / scale[:, None, None, None]), -127, 127).astype(np.int8)
    zero = np.zeros(len(weight), np.int8)
    return ([helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name], axis=0)],
            [numpy_helper.from_array(quantised, f"{name}_q"), numpy_helper.from_array(scale, f"{name}_s"),
             numpy_helper.from_array(zero, f"{name}_z")])


def _keras_layout(index, weight, name):
    """A TF/Keras kernel (kh, kw, in, out) transposed to ONNX's layout in the graph."""
    return ([helper.make_node("Transpose", [f"{name}_k"], [name], perm=[3, 2, 0, 1])],
            [numpy_helper.from_array(np.ascontiguousarray(weight.transpose(2, 3, 1, 0)), f"{name}_k")])


@pytest.mark.parametrize("route", [_fp16, _qdq_per_channel, _keras_layout], ids=["fp16", "int8 QDQ", "keras layout"])
def test_weights_are_read_through_casts_quantisation_and_layouts(route):
    result = _score(OWNER, conv_chain(OWNER, route))
    assert result.aligned_layers == 3 and result.score > 2.0


def test_pruned_and_noisy_copies_stay_significant():
    rng = np.random.default_rng(5)
    pruned = [np.where(np.abs(w) >= np.quantile(np.abs(w), 0.3), w, 0).astype(np.float32) for w in OWNER]
    noisy = [(w + rng.normal(0, 0.05 * w.std(), w.shape)).astype(np.float32) for w in OWNER]
    fitted = weights.null()
    for suspect in (pruned, noisy):
        assert fitted.p_value(_score(OWNER, conv_chain(suspect)).score) < 1e-6


def test_owner_layers_reused_inside_a_larger_network_align():
    extra = chain_weights(7, depth=4)
    bigger = [extra[0], extra[1], *OWNER[1:4], extra[2], extra[3]]  # the owner's hidden layers, wrapped
    result = _score(OWNER, conv_chain(bigger))
    assert result.aligned_layers == 3 and result.score > 2.5


def test_sketch_does_not_give_the_weights_back():
    """The best an attacker can do with a row's Gram matrix is a factor of it: the input-channel rotation is
    lost, a different one per row, so the rebuilt kernels are unrelated to the real ones and the network
    rebuilt from them does not compute the owner's function."""
    found = weights.sketch(conv_chain(OWNER))
    rebuilt = [OWNER[0]]  # not sketched: the attacker gets it free here, to be generous
    for layer, weight in zip(found.layers, OWNER[1:4], strict=True):
        inputs = weight.shape[1]
        rows = [_best_factor(descriptor, 9, inputs).reshape(inputs, 3, 3) for descriptor in layer]
        rebuilt.append(np.stack(rows).astype(np.float32))
    rebuilt.append(OWNER[4])
    for guess, truth in zip(rebuilt[1:4], OWNER[1:4], strict=True):
        scale = np.linalg.norm(truth.reshape(len(truth), -1), axis=1)[:, None, None, None]
        guess = guess * scale  # even given every row's norm
        cosine = float((guess * truth).sum() / (np.linalg.norm(guess) * np.linalg.norm(truth)))
        assert abs(cosine) < 0.5, cosine
    owner_out = _run(conv_chain(OWNER), IMAGE).ravel()

    def closeness(convs: list[np.ndarray]) -> float:
        return float(np.corrcoef(owner_out, _run(conv_chain(convs), IMAGE).ravel())[0, 1])

    # no closer to the owner's function than networks drawn independently from the same population
    assert closeness(rebuilt) < min(closeness(chain_weights(seed)) for seed in (1, 2, 3))


def test_models_without_qualifying_convolutions_have_an_empty_sketch():
    assert len(weights.sketch(conv_chain([OWNER[0], OWNER[4]]))) == 0
    assert weights.compare(weights.EMPTY_SKETCH, weights.sketch(conv_chain(OWNER))).score == 0.0


# Linear layers (MatMul / Gemm weights, as transformers are exported): the same evidence, inputs cut into groups.

def _mlp_weights(seed: int, widths: tuple[int, ...] = (24, 48, 48, 32)) -> list[np.ndarray]:
    """(out, in) weights with a shared population structure (every row leans on the same inputs a little) plus
    per-row identity, like trained layers."""
    rng = np.random.default_rng(seed)
    shared = np.random.default_rng(99)
    return [(0.3 * shared.normal(size=(1, n_in)) + rng.normal(size=(n_out, n_in))).astype(np.float32)
            for n_in, n_out in itertools.pairwise(widths)]


def _mlp(layers: list[np.ndarray], gemm: bool = False, fp16: bool = False) -> onnx.ModelProto:
    """tokens (N, in) -> (MatMul x @ W^T, or Gemm with transB=1 -> Relu) x n -> out."""
    nodes, initializers, current = [], [], "tokens"
    for index, weight in enumerate(layers):
        name = f"w{index}"
        stored = weight if gemm else np.ascontiguousarray(weight.T)
        if fp16:
            nodes.append(helper.make_node("Cast", [f"{name}_h"], [name], to=TensorProto.FLOAT))
            initializers.append(numpy_helper.from_array(stored.astype(np.float16), f"{name}_h"))
        else:
            initializers.append(numpy_helper.from_array(stored, name))
        op = helper.make_node("Gemm", [current, name], [f"m{index}"], transB=1) if gemm else \
            helper.make_node("MatMul", [current, name], [f"m{index}"])
        nodes += [op, helper.make_node("Relu", [f"m{index}"], [f"r{index}"])]
        current = f"r{index}"
    nodes.append(helper.make_node("Identity", [current], ["out"]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("tokens", TensorProto.FLOAT,
                                                                           ["N", layers[0].shape[1]])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


MLP = _mlp_weights(0)
TOKENS = np.random.default_rng(8).normal(size=(64, 24)).astype(np.float32)


def _mlp_score(suspect: list[np.ndarray], **route) -> weights.WeightComparison:
    return weights.compare(weights.sketch(_mlp(MLP)), weights.sketch(_mlp(suspect, **route)))


def _mlp_run(layers: list[np.ndarray]) -> np.ndarray:
    return make_session(_mlp(layers).SerializeToString()).run(None, {"tokens": TOKENS})[0]


def test_linear_layers_are_sketched_and_separate_copies_from_independent_ones():
    found = weights.sketch(_mlp(MLP))
    assert found.kernels == ((0, 6), (0, 8), (0, 8))  # 24 inputs: groups of 6; 48: groups of 8
    same, independent = _mlp_score(MLP), _mlp_score(_mlp_weights(1))
    assert same.aligned_layers == same.owner_layers == 3 and same.score > 2.5
    assert abs(independent.score) < 0.15
    fitted = weights.null()
    assert fitted.p_value(same.score) < 1e-6 and fitted.p_value(independent.score) > 0.01


@pytest.mark.parametrize("route", [{"gemm": True}, {"fp16": True}], ids=["Gemm transB", "fp16"])
def test_linear_weights_are_read_through_gemm_and_casts(route):
    assert _mlp_score(MLP, **route).score == pytest.approx(_mlp_score(MLP).score, abs=1e-2)


def test_linear_copies_survive_pruning_noise_and_row_scaling():
    rng = np.random.default_rng(5)
    pruned = [np.where(np.abs(w) >= np.quantile(np.abs(w), 0.3), w, 0).astype(np.float32) for w in MLP]
    noisy = [(w + rng.normal(0, 0.05 * w.std(), w.shape)).astype(np.float32) for w in MLP]
    scaled = [(w * rng.uniform(0.2, 3.0, (len(w), 1))).astype(np.float32) for w in MLP]
    fitted = weights.null()
    for suspect in (pruned, noisy, scaled):
        assert fitted.p_value(_mlp_score(suspect).score) < 1e-6


def test_permuted_hidden_units_hide_only_the_layer_that_reads_them():
    """Permuting layer 0's outputs (and layer 1's inputs to match) keeps the function; layer 0 still matches
    (outputs are matched row by row), layer 1 reads its inputs in another order and drops to chance, layer 2
    is untouched: two of three layers still carry the lineage (the documented limit of linear sketches)."""
    perm = np.random.default_rng(3).permutation(48)
    permuted = [MLP[0][perm], MLP[1][:, perm], MLP[2]]
    np.testing.assert_allclose(_mlp_run(permuted), _mlp_run(MLP), rtol=1e-4, atol=1e-4)
    full, found = _mlp_score(MLP).score, _mlp_score(permuted).score
    assert found == pytest.approx(full * 2 / 3, abs=0.15)
    assert weights.null().p_value(found) < 1e-6


def test_small_linear_layers_are_not_sketched():
    assert len(weights.sketch(_mlp([np.ones((32, 12), np.float32), np.ones((3, 32), np.float32)]))) == 0


def test_linear_sketch_does_not_give_the_weights_back():
    """As for convolutions: a row's g x g Gram matrix over its input blocks fixes the blocks only up to a rotation
    of the block space, a different one per row, so even with every row's norm the rebuilt layers are unrelated
    to the real ones and compute nothing closer to the owner's function than independent networks."""
    found = weights.sketch(_mlp(MLP))
    rebuilt = []
    for layer, kernel, truth in zip(found.layers, found.kernels, MLP, strict=True):
        group = kernel[1]
        blocks = truth.shape[1] // group
        guess = np.stack([_best_factor(descriptor, group, blocks).ravel() for descriptor in layer])
        guess = guess * np.linalg.norm(truth, axis=1, keepdims=True)  # even given every row's norm
        guess = np.pad(guess, ((0, 0), (0, truth.shape[1] - guess.shape[1]))).astype(np.float32)
        cosine = float((guess * truth).sum() / (np.linalg.norm(guess) * np.linalg.norm(truth)))
        assert abs(cosine) < 0.5, cosine
        rebuilt.append(guess)
    owner_out = _mlp_run(MLP).ravel()

    def closeness(layers: list[np.ndarray]) -> float:
        return float(np.corrcoef(owner_out, _mlp_run(layers).ravel())[0, 1])

    assert closeness(rebuilt) < min(closeness(_mlp_weights(seed)) for seed in (1, 2, 3))


def test_large_sketches_are_aligned_on_best_rows_with_the_same_verdicts(monkeypatch: pytest.MonkeyPatch):
    """Beyond EXACT_ALIGNMENT_PAIRS layer pairs (hundreds of transformer layers) layers are aligned without
    matchings; copies score exactly as before, and independent models stay at chance."""
    exact = [_mlp_score(MLP).score, _mlp_score(_mlp_weights(1)).score, _score(OWNER, conv_chain(OWNER)).score]
    monkeypatch.setattr(weights, "EXACT_ALIGNMENT_PAIRS", 0)
    cheap = [_mlp_score(MLP).score, _mlp_score(_mlp_weights(1)).score, _score(OWNER, conv_chain(OWNER)).score]
    assert cheap[0] == pytest.approx(exact[0], abs=1e-9) and cheap[2] == pytest.approx(exact[2], abs=1e-9)
    assert abs(cheap[1]) < 0.15


def test_a_sketch_keeps_at_most_max_layers(monkeypatch: pytest.MonkeyPatch):
    """The first MAX_LAYERS qualifying layers in graph order: a fingerprint file holds no more."""
    monkeypatch.setattr(weights, "MAX_LAYERS", 2)
    assert weights.sketch(_mlp(MLP)).kernels == ((0, 6), (0, 8))


def test_layers_holding_nan_or_inf_are_left_out():
    """A crafted suspect's non-finite weights (in a branch whose output is unused, say) would break the matching:
    the layer is left out and the other layers still decide."""
    for value in (np.nan, np.inf):
        poisoned = [w.copy() for w in OWNER]
        poisoned[2][0, 0, 0, 0] = value
        found = weights.sketch(conv_chain(poisoned))
        assert len(found) == 2 and all(np.isfinite(layer).all() for layer in found.layers)
        result = weights.compare(weights.sketch(conv_chain(OWNER)), found)
        assert result.aligned_layers == 2 and result.score > 1.5
