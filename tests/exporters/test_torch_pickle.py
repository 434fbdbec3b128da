"""exporters.torch_pickle: a pickled module's weights, read without importing or running anything it names.

The control case loads the same file the normal way to show its payload really runs code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporters import ExportError, ExportRequest, export
from exporters.torch_pickle import inert_state_dict

torch = pytest.importorskip("torch")
from exporters.architectures.torch_nets import ESPCN  # noqa: E402  (needs torch)

pytestmark = [pytest.mark.frameworks]


class Payload:
    """Unpickled the normal way, creates the directory `marker`: stands for any code a pickle can run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


class Net(torch.nn.Module):
    """Nested modules, a bias-free conv, BatchNorm buffers, and a payload among its attributes."""

    def __init__(self, marker: Path):
        super().__init__()
        self.head = torch.nn.Conv2d(1, 4, 3, bias=False)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
        self.payload = Payload(marker)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_weights_come_out_and_nothing_runs(tmp_path: Path, zip_format: bool):
    torch.manual_seed(0)
    net = Net(tmp_path / "ran")
    net.body[1].running_mean.normal_()
    path = tmp_path / "net.pth"
    torch.save({"epoch": 3, "model": net}, path, _use_new_zipfile_serialization=zip_format)
    weights = inert_state_dict(torch, path)
    assert not (tmp_path / "ran").exists()
    expected = net.state_dict()
    assert list(weights) == list(expected)
    assert all(torch.equal(weights[name], tensor) for name, tensor in expected.items())
    torch.load(path, weights_only=False)  # control: the normal way runs the payload
    assert (tmp_path / "ran").is_dir()


def test_trusted_pickle_of_a_known_layout_exports_without_running_it(tmp_path: Path):
    net = ESPCN(scale=2, channels=1, width=8)
    net.payload = Payload(tmp_path / "ran")
    source, out = tmp_path / "espcn.pth", tmp_path / "espcn.onnx"
    torch.save(net, source)
    with pytest.raises(ExportError, match="pickle that runs code"):
        export(ExportRequest(source=source, output=out))
    result = export(ExportRequest(source=source, output=out, trust_pickle=True))
    assert ":ESPCN(" in result.architecture and result.max_rel_error < 1e-4
    assert not (tmp_path / "ran").exists()


def test_pickle_without_a_module_is_one_line_error(tmp_path: Path):
    path = tmp_path / "numbers.pth"
    torch.save({"epoch": 3, "payload": Payload(tmp_path / "ran")}, path)
    with pytest.raises(ExportError, match="holds no torch module"):
        inert_state_dict(torch, path)
    assert not (tmp_path / "ran").exists()


def test_a_module_containing_itself_is_walked_once(tmp_path: Path):
    net = Net(tmp_path / "ran")
    expected = net.state_dict()
    net._modules["loop"] = net  # a crafted cycle: nn.Module.state_dict itself would never end
    path = tmp_path / "loop.pth"
    torch.save(net, path)
    assert list(inert_state_dict(torch, path)) == list(expected)
