"""One trained DnCNN ported to PyTorch, Keras, Flax and Paddle, each file exported by `exporters.export`
as an auditor would: the ONNX files compute the same function (relative error < 1e-4 on a fixed
input, pairwise) although their graphs differ (NCHW/NHWC, torch dynamo / tf2onnx / jax2onnx /
paddle2onnx), and each port is `derived` from the fingerprint of the torch export.

A framework is skipped when it, or its exporter, is not installed (Paddle lives in its own
environment); an independently trained model's `independent` verdict is tested in
tests/verifier/method/test_verification.py.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
from trained import fingerprint

from exporters import EXPORTERS, ExportError, ExportRequest, export
from models.ports import PORTS, DnCNNWeights
from verifier import load_model
from verifier.method.fingerprint import Fingerprint
from verifier.method.verification import verify

pytestmark = [pytest.mark.slow, pytest.mark.frameworks]

#: The modules each port needs to be written and converted.
_NEEDS = {"torch": ("torch",), "tensorflow": ("keras", "tf2onnx"), "flax": ("flax", "jax2onnx"), "paddle": ("paddle",)}
FRAMEWORKS = [port.framework for port in PORTS]
TOLERANCE = 1e-4


def _missing(framework: str) -> str | None:
    """Why this framework's port cannot be written and exported here, or None."""
    for module in _NEEDS[framework]:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    if framework not in EXPORTERS:
        return f"exporters has no '{framework}' exporter"
    return None


@pytest.fixture(scope="module")
def weights(trained_models: dict[str, Path]) -> DnCNNWeights:
    torch = pytest.importorskip("torch")

    return DnCNNWeights.from_state_dict(torch.load(trained_models["owner_state_dict"], weights_only=True))


class Exports:
    """Each port's ONNX export, made on first use, so a framework that is missing skips only its own tests."""

    def __init__(self, weights: DnCNNWeights, folder: Path):
        self.weights, self.folder = weights, folder
        self.done: dict[str, Path] = {}

    def __call__(self, framework: str) -> Path:
        if framework not in self.done:
            if (reason := _missing(framework)) is not None:
                pytest.skip(reason)
            port = next(port for port in PORTS if port.framework == framework)
            source = self.folder / f"owner{port.suffix}"
            port.write(self.weights, source)
            arch = {} if port.arch is None else {"arch": port.arch, "arch_kwargs": self.weights.kwargs()}
            result = export(ExportRequest(source, self.folder / f"{framework}.onnx", **arch))
            assert result.max_rel_error is not None and result.max_rel_error <= TOLERANCE, result
            self.done[framework] = Path(result.output)
        return self.done[framework]


@pytest.fixture(scope="module")
def exported(weights: DnCNNWeights, tmp_path_factory: pytest.TempPathFactory) -> Exports:
    return Exports(weights, tmp_path_factory.mktemp("ports"))


def test_ports_are_different_files_and_graphs(exported: Exports):
    """The agreement below is not trivial: every export is its own graph (torch's NCHW, Flax's NHWC)."""
    paths = {name: exported(name) for name in FRAMEWORKS if _missing(name) is None}
    if len(paths) < 2:
        pytest.skip(f"needs two installed frameworks, has {sorted(paths)}")
    assert len({path.read_bytes() for path in paths.values()}) == len(paths) >= 2
    layouts = {framework: load_model(path).io.layout for framework, path in paths.items()}
    assert layouts.get("torch", "NCHW") == "NCHW" and layouts.get("flax", "NHWC") == "NHWC", layouts


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(FRAMEWORKS, 2)))
def test_ports_agree(exported: Exports, first: str, second: str):
    for name in (first, second):  # before converting either: TensorFlow loaded before paddle crashes paddle's import
        if (reason := _missing(name)) is not None:
            pytest.skip(reason)
    image = np.random.default_rng(7).random((1, 1, 40, 56), dtype=np.float32)  # not square: catches H/W swaps
    a, b = (load_model(exported(name)).run(image) for name in (first, second))
    error = float(np.abs(a - b).max() / np.abs(a).max())
    assert error < TOLERANCE, f"{first} vs {second}: relative error {error:.3g}"


@pytest.fixture(scope="module")
def torch_fingerprint(exported: Exports, trained_models: dict[str, Path]) -> Fingerprint:
    return fingerprint(exported("torch"), trained_models)


@pytest.mark.parametrize("framework", [name for name in FRAMEWORKS if name != "torch"])
def test_port_is_derived(exported: Exports, torch_fingerprint: Fingerprint, framework: str):
    result = verify(torch_fingerprint, load_model(exported(framework)))
    assert result.verdict == "derived" and result.p_value < result.fpr, result


def test_paddle_port_computes_the_torch_function(weights: DnCNNWeights, tmp_path: Path):
    """Paddle's own forward pass on its .pdparams against torch's on the same weights, for environments
    with paddle but no Paddle exporter (paddle's own environment: imported after TensorFlow, paddle crashes)."""
    paddle = pytest.importorskip("paddle")
    import torch

    from exporters.architectures import paddle_nets, torch_nets
    from models.ports import write_paddle, write_torch

    write_paddle(weights, tmp_path / "owner.pdparams")
    write_torch(weights, tmp_path / "owner.pt")
    ported = paddle_nets.DnCNN(**weights.kwargs())
    ported.set_state_dict(paddle.load(str(tmp_path / "owner.pdparams")))
    ported.eval()
    original = torch_nets.DnCNN(**weights.kwargs()).eval()
    original.load_state_dict(torch.load(tmp_path / "owner.pt", weights_only=True))
    image = np.random.default_rng(7).random((1, 1, 40, 56), dtype=np.float32)
    with torch.no_grad():
        expected = original(torch.from_numpy(image)).numpy()
    error = float(np.abs(ported(paddle.to_tensor(image)).numpy() - expected).max() / np.abs(expected).max())
    assert error < TOLERANCE, error


def test_flax_near_miss_is_refused(weights: DnCNNWeights, tmp_path: Path):
    """A checkpoint that is not exactly flax_nets.DnCNN (here: a BatchNorm missing) is not guessed at."""
    pytest.importorskip("flax")
    from flax import serialization

    from models.ports import write_flax

    write_flax(weights, tmp_path / "owner.msgpack")
    variables = serialization.msgpack_restore((tmp_path / "owner.msgpack").read_bytes())
    del variables["params"]["bn_1"], variables["batch_stats"]["bn_1"]
    (tmp_path / "edited.msgpack").write_bytes(serialization.msgpack_serialize(variables))
    with pytest.raises(ExportError, match="does not know"):
        export(ExportRequest(tmp_path / "edited.msgpack", tmp_path / "edited.onnx"))
    assert not (tmp_path / "edited.onnx").exists()
