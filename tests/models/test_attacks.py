"""Graph-level attacks keep the function (up to their precision) and verifier loads the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")

from models import attacks  # noqa: E402
from models.torch_archs import DnCNN  # noqa: E402
from models.training import Task, export_onnx  # noqa: E402
from verifier import load_model  # noqa: E402

pytestmark = [pytest.mark.frameworks]

TASK = Task("noise", 3, sigma=25 / 255)
# attack: (function, largest allowed output difference to the source)
GRAPH_ATTACKS = {
    "fp16": (attacks.to_fp16, 1e-3),
    "range255": (attacks.range_wrapper, 1e-5),
    "ortbasic": (attacks.ort_optimized, 1e-5),
    "int8": (lambda a, b: attacks.quantize_int8(a, b, TASK, 0), 0.1),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return export_onnx(DnCNN(channels=3, depth=3, width=8), 3, tmp_path_factory.mktemp("a") / "src.onnx")


@pytest.mark.parametrize("name", sorted(GRAPH_ATTACKS))
def test_graph_attack_keeps_the_function(source: Path, tmp_path: Path, name: str):
    make, tolerance = GRAPH_ATTACKS[name]
    attacked = load_model(make(source, tmp_path / f"{name}.onnx"))
    x = np.random.default_rng(0).random((1, 3, 24, 24), dtype=np.float32)
    difference = np.abs(attacked.run(x) - load_model(source).run(x)).max()
    assert difference < tolerance
    assert name != "int8" or difference > 0  # quantisation does change the outputs


def test_range_wrapper_declares_its_range(source: Path, tmp_path: Path):
    assert load_model(attacks.range_wrapper(source, tmp_path / "r.onnx")).io.value_range == (0.0, 255.0)


def test_unfolded_export_keeps_batch_norm(tmp_path: Path):
    torch.manual_seed(0)
    path = export_onnx(DnCNN(channels=1, depth=3, width=8), 1, tmp_path / "bn.onnx", fold=False)
    assert "BatchNormalization" in {node.op_type for node in onnx.load(str(path)).graph.node}


def test_prune_and_noise():
    torch.manual_seed(0)
    net = DnCNN(channels=1, depth=3, width=8)
    pruned = attacks.prune(net, 0.3)
    conv = [m for m in pruned.modules() if isinstance(m, torch.nn.Conv2d)][1]
    assert 0.29 <= float((conv.weight == 0).float().mean()) <= 0.31
    noisy = attacks.weight_noise(net, 0.05, seed=1)
    assert not torch.equal(next(noisy.parameters()), next(net.parameters()))
    assert torch.equal(next(attacks.weight_noise(net, 0.05, seed=1).parameters()), next(noisy.parameters()))
