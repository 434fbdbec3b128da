"""Real PaddlePaddle weight files from ../shared/third_party, and our own: detected, exported, checked, working.

As for torch, "working" is measured: the denoiser must raise PSNR on a noisy synthetic image
by a wide margin, the SR model must beat nearest-neighbour upscaling, and cubic upscaling on
a photograph (scikit-image's camera, which the package ships).  Skipped when paddle or
paddle2onnx is absent.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from third_party import downscaled, export_checked, noisy, psnr, scene

from exporters import ExportError, ExportRequest, export
from verifier import load_model

pytestmark = [pytest.mark.slow, pytest.mark.third_party, pytest.mark.frameworks]

paddle = pytest.importorskip("paddle")
pytest.importorskip("paddle2onnx")

from exporters.architectures.paddle_nets import DnCNN  # noqa: E402  (needs paddle)

SIZE = 48
DNCNN, ESPCN = "sldyns_DnCNN_paddle/net.pdparams", "XDpaddle_ESPCN_paddle/best.pdiparams"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each third-party file exported once for the module: name -> (ExportResult, Model)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = export_checked(name, tmp_path_factory.mktemp(Path(name).parent.name))
        return cache[name]

    return get


def test_dncnn_s15_denoises(exported):
    result, model = exported(DNCNN)
    assert "paddle_nets:DnCNN(batch_norm=True, bias=False, channels=1, depth=17, width=64)" in result.architecture
    assert (model.io.layout, model.io.scale, model.io.value_range) == ("NCHW", 1, (0.0, 1.0))
    clean = scene(1, SIZE)
    degraded = noisy(clean, 15 / 255)
    assert psnr(np.clip(model.run(degraded), 0, 1), clean) > psnr(degraded, clean) + 8


def test_espcn_x3_beats_nearest_upscaling(exported):
    result, model = exported(ESPCN)
    assert "paddle_nets:ESPCN(channels=1, clip=False, scale=3, width=64)" in result.architecture
    clean = scene(1, SIZE)
    small, nearest = downscaled(clean, 3)
    assert psnr(np.clip(model.run(small), 0, 1), clean) > psnr(nearest, clean)


def test_espcn_x3_beats_cubic_upscaling_on_a_photo(exported):
    data, transform = pytest.importorskip("skimage.data"), pytest.importorskip("skimage.transform")
    _, model = exported(ESPCN)
    clean = (data.camera()[100:292, 150:342] / 255).astype(np.float32)[None, None]
    small, _ = downscaled(clean, 3)
    cubic = transform.resize(small[0, 0], clean.shape[2:], order=3)[None, None]
    assert psnr(np.clip(model.run(small), 0, 1), clean) > psnr(np.clip(cubic, 0, 1), clean)


def _own_dncnn(path: Path) -> Path:
    """paddle.save of our DnCNN's state_dict, with non-trivial BatchNorm statistics."""
    paddle.seed(0)
    layer = DnCNN(channels=1, depth=4, width=8)
    for name, tensor in layer.state_dict().items():
        if name.endswith(("_mean", "_variance")):
            tensor.set_value(np.random.default_rng(1).uniform(0.5, 1.5, tensor.shape).astype(np.float32))
    paddle.save(layer.state_dict(), str(path))
    return path


def test_our_own_dncnn_state_dict_exports(tmp_path: Path):
    out = tmp_path / "own.onnx"
    result = export(ExportRequest(source=_own_dncnn(tmp_path / "own.pdparams"), output=out))
    assert "paddle_nets:DnCNN(batch_norm=True, bias=True, channels=1, depth=4, width=8)" in result.architecture
    assert result.max_rel_error < 1e-4 and result.framework == "paddle"
    assert load_model(out).run(scene(1, 24)).shape == (1, 1, 24, 24)


def test_export_after_tensorflow_runs_in_a_child_process(tmp_path: Path):
    """paddle segfaults when imported after TensorFlow: then the exporter hands the export to a fresh process."""
    pytest.importorskip("tensorflow")
    source, out = _own_dncnn(tmp_path / "own.pdparams"), tmp_path / "own.onnx"
    program = ("import sys, tensorflow; from pathlib import Path; from exporters import ExportRequest, export; "
               "result = export(ExportRequest(Path(sys.argv[1]), Path(sys.argv[2]))); "
               "assert 'paddle' not in sys.modules; print(result.framework, result.max_rel_error)")
    done = subprocess.run([sys.executable, "-c", program, str(source), str(out)], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    framework, error = done.stdout.split()
    assert framework == "paddle" and float(error) < 1e-4
    assert load_model(out).run(scene(1, 24)).shape == (1, 1, 24, 24)


def test_a_pickled_layer_needs_trust(tmp_path: Path):
    source, out = tmp_path / "layer.pdparams", tmp_path / "layer.onnx"
    source.write_bytes(pickle.dumps(DnCNN(channels=1, depth=3, width=4)))
    with pytest.raises(ExportError, match="pickle that runs code"):
        export(ExportRequest(source=source, output=out))
    assert not out.exists()
    result = export(ExportRequest(source=source, output=out, trust_pickle=True))
    assert result.architecture is None and result.max_rel_error < 1e-4


def test_unknown_weights_ask_for_an_architecture(tmp_path: Path):
    source = tmp_path / "odd.pdparams"
    paddle.save({"head.weight": paddle.ones([4, 4])}, str(source))
    with pytest.raises(ExportError, match="--arch"):
        export(ExportRequest(source=source, output=tmp_path / "odd.onnx"))


_UNCONVERTIBLE = '''
import paddle.nn.functional as F
from paddle import nn


class Up(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(1, 1, 3, padding=1)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear")
'''


def test_what_paddle2onnx_cannot_convert_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """paddle2onnx 2.1 cannot convert interpolate(scale_factor=...): a clean error, no output file."""
    (tmp_path / "upnet.py").write_text(_UNCONVERTIBLE)
    monkeypatch.syspath_prepend(str(tmp_path))
    source, out = tmp_path / "up.pdparams", tmp_path / "up.onnx"
    paddle.save({"conv.weight": paddle.ones([1, 1, 3, 3]), "conv.bias": paddle.zeros([1])}, str(source))
    with pytest.raises(ExportError, match="paddle2onnx cannot convert") as error:
        export(ExportRequest(source=source, output=out, arch="upnet:Up"))
    assert "\n" not in str(error.value) and not out.exists()


def test_jit_saved_parameters_are_named_as_such(tmp_path: Path):
    layer = DnCNN(channels=1, depth=3, width=4).eval()
    spec = [paddle.static.InputSpec([None, 1, None, None], "float32", "image")]
    paddle.jit.save(layer, str(tmp_path / "model"), input_spec=spec)
    with pytest.raises(ExportError, match=r"paddle\.jit\.save are not supported"):
        export(ExportRequest(source=tmp_path / "model.pdiparams", output=tmp_path / "model.onnx"))
    assert not (tmp_path / "model.onnx").exists()
