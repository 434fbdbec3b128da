"""The real-model scripts' own logic: lineage families, and attacks that must keep (or change) a model's function."""

from __future__ import annotations

import pytest

from models.weight_null import RELATED_SCORE, families

torch = pytest.importorskip("torch")


def test_families_link_related_files_transitively():
    high, low = RELATED_SCORE + 1, RELATED_SCORE - 0.2
    scores = {("a", "b"): high, ("b", "a"): high, ("b", "c"): low, ("c", "b"): high, ("a", "d"): low,
              ("d", "a"): low}
    assert families(["a", "b", "c", "d"], scores) == [["a", "b", "c"], ["d"]]


def test_permutation_keeps_the_function_and_moves_the_weights():
    from exporters.architectures.torch_nets import DnCNN
    from models.bench_real import permuted

    torch.manual_seed(0)
    net = DnCNN(channels=1, depth=5, width=8).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so they must move with the channels
        for layer in net.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 2.0)
    shuffled = permuted(net, seed=1).eval()
    image = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net(image), shuffled(image), atol=1e-5)
    assert not torch.equal(net.body[2].weight, shuffled.body[2].weight)


def test_average_of_two_models_is_their_mean():
    from models.bench_real import averaged

    a, b = torch.nn.Conv2d(2, 3, 3), torch.nn.Conv2d(2, 3, 3)
    assert torch.allclose(averaged(a, b).weight, (a.weight + b.weight) / 2)


def test_attacked_linear_scores_cover_each_attack_and_only_linear_layers():
    """A state_dict's 2-D tensors attacked as linear layers (4-D tensors ignored): a light attack keeps almost a
    copy's score, 60% pruning keeps less, every one stays far above independent layers (about 0)."""
    import numpy as np

    from models.weight_null import attacked_linear_scores

    rng = np.random.default_rng(0)
    tensors = [rng.normal(size=(8, 16, 3, 3)).astype(np.float32),
               *(rng.normal(size=(48, 32)).astype(np.float32) for _ in range(3))]
    scores = attacked_linear_scores(tensors)
    assert set(scores) == {"fp16", "prune 30%", "prune 60%", "noise 1%", "noise 5%"}
    assert scores["fp16"] > 3.0 and scores["noise 1%"] > 3.0
    assert 0.5 < scores["prune 60%"] < scores["prune 30%"] < scores["noise 1%"]
