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
