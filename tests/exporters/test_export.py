"""`exporters.export` and `verifier export`: PyTorch weights and ONNX in, checked ONNX out.

PyTorch cases skip without torch.  Every failure must leave no file at the output path.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from exporters import ExportError, ExportRequest, export
from exporters.base import META_FRAMEWORK, META_SOURCE_SHA256, require
from tests.verifier.builders import conv_model, save
from verifier import load_model
from verifier.cli import main
from verifier.graph.onnx_file import sha256_file

pytestmark = [pytest.mark.frameworks]

ARCH = "models.torch_archs:ESPCN"
KWARGS = {"scale": 2, "channels": 3, "width": 16}


@pytest.fixture
def torch_files(tmp_path: Path) -> dict[str, Path]:
    torch = pytest.importorskip("torch")
    from models.torch_archs import ESPCN

    torch.manual_seed(0)
    net = ESPCN(**KWARGS)
    paths = {"weights": tmp_path / "espcn.pth", "module": tmp_path / "espcn_module.pth",
             "prefixed": tmp_path / "dataparallel.pth"}
    torch.save(net.state_dict(), paths["weights"])
    torch.save(net, paths["module"])
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, paths["prefixed"])
    return paths


def _metadata(path: Path) -> dict[str, str]:
    return {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}


def test_state_dict_export_is_checked_and_loadable(torch_files, tmp_path: Path):
    out = tmp_path / "out.onnx"
    result = export(ExportRequest(source=torch_files["weights"], output=out, arch=ARCH, arch_kwargs=KWARGS))
    assert result.max_rel_error is not None and result.max_rel_error < 1e-4
    meta = _metadata(out)
    assert meta[META_FRAMEWORK] == "torch"
    assert meta[META_SOURCE_SHA256] == sha256_file(torch_files["weights"])
    model = load_model(out)
    assert (model.io.layout_source, model.io.scale) == ("metadata", 2)
    assert model.run(np.zeros((1, 3, 20, 24), np.float32)).shape == (1, 3, 40, 48)  # dynamic H, W


def test_checkpoint_wrapper_and_dataparallel_prefix(torch_files, tmp_path: Path):
    result = export(ExportRequest(source=torch_files["prefixed"], output=tmp_path / "o.onnx", arch=ARCH,
                                  arch_kwargs=KWARGS))
    assert result.max_rel_error < 1e-4


def test_pickled_module_needs_trust(torch_files, tmp_path: Path):
    out = tmp_path / "o.onnx"
    with pytest.raises(ExportError, match="pickle that runs code"):
        export(ExportRequest(source=torch_files["module"], output=out))
    assert not out.exists()
    export(ExportRequest(source=torch_files["module"], output=out, trust_pickle=True))
    assert out.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"scale": 3, "channels": 3, "width": 16}, r"tensor 'body.4.weight' has shape \[12, 8, 3, 3\] in the file "
                                                r"but \[27, 8, 3, 3\]"),
     (None, "has shape")],
)
def test_mismatching_weights_name_the_tensor(torch_files, tmp_path: Path, kwargs, message: str):
    out = tmp_path / "o.onnx"
    with pytest.raises(ExportError, match=message):
        export(ExportRequest(source=torch_files["weights"], output=out, arch=ARCH, arch_kwargs=kwargs))
    assert not out.exists() and not list(tmp_path.glob(".o.onnx.*"))


@pytest.mark.parametrize("content", [b"junk bytes, not a checkpoint", b"PK\x03\x04truncated zip"])
def test_corrupt_torch_file(torch_files, tmp_path: Path, content: bytes):
    source = tmp_path / "broken.pth"
    source.write_bytes(content)
    with pytest.raises(ExportError, match=r"cannot read .* as a PyTorch file"):
        export(ExportRequest(source=source, output=tmp_path / "o.onnx", arch=ARCH))


def test_weights_without_arch(torch_files, tmp_path: Path):
    with pytest.raises(ExportError, match="--arch"):
        export(ExportRequest(source=torch_files["weights"], output=tmp_path / "o.onnx"))


def test_onnx_passthrough_records_provenance(tmp_path: Path):
    model = conv_model()
    model.producer_name = "verifier-tests"
    source = save(model, tmp_path / "source.onnx")
    result = export(ExportRequest(source=source, output=tmp_path / "copy.onnx"))
    assert result.framework == "verifier-tests"
    assert _metadata(tmp_path / "copy.onnx")[META_SOURCE_SHA256] == sha256_file(source)
    assert load_model(tmp_path / "copy.onnx").io.channels == 3


def _needs(module: str) -> pytest.MarkDecorator:
    """Without the framework the refusal is "needs the ... extra", tested in test_missing_extra_is_named."""
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not installed")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("model.xyz", b"junk", "unknown model format '.xyz'"),
     pytest.param("model.h5", b"junk", "cannot read", marks=_needs("h5py")),
     pytest.param("model.tflite", b"junk", "cannot convert", marks=_needs("tensorflow")),
     ("model.pdparams", b"junk", "cannot read"),
     ("model.onnx", b"junk", "not a valid ONNX")],
)
def test_cli_bad_sources_exit_2_without_output(tmp_path: Path, name: str, content: bytes, message: str):
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "out.onnx"
    result = CliRunner().invoke(main, ["export", str(source), "-o", str(out)])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_json(torch_files, tmp_path: Path):
    out = tmp_path / "o.onnx"
    result = CliRunner().invoke(main, ["export", str(torch_files["weights"]), "-o", str(out), "--arch", ARCH,
                                       "--arch-kwargs", json.dumps(KWARGS), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_rel_error"] < 1e-4


def test_missing_extra_is_named():
    with pytest.raises(ExportError, match=r"no_such_framework is not installed; install it with: "
                                          r"pip install 'verifier\[tensorflow\]'"):
        require("no_such_framework", "tensorflow")
