"""PaddlePaddle models exported by paddle2onnx: forward and input gradient match paddle.

Skipped unless paddlepaddle and paddle2onnx are installed (`pip install .[paddle]`, then
`pip install --no-deps "paddle2onnx==2.1.*"`: it declares onnx<=1.17 but runs with onnx 1.23).  Survey: paddle2onnx
2.1 emits BatchNormalization, PRelu, DepthToSpace (PixelShuffle), ConvTranspose, Resize,
GlobalAveragePool, LayerNorm as ReduceMean/Pow/Sqrt, GELU as Erf; all are lowered or native.
It cannot export F.interpolate with `scale_factor` (a paddle2onnx bug that kills the process),
so the model below resizes with `size`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("paddle")
pytest.importorskip("paddle2onnx")

from verifier import load_model

pytestmark = [pytest.mark.frameworks]

_EXPORT = textwrap.dedent('''
    import sys
    import numpy as np
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F
    import paddle2onnx

    class Net(nn.Layer):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2D(3, 16, 3, padding=1)
            self.bn = nn.BatchNorm2D(16)
            self.act = nn.PReLU(16)
            self.squeeze, self.excite = nn.Conv2D(16, 4, 1), nn.Conv2D(4, 16, 1)
            self.norm = nn.LayerNorm(16)
            self.c2 = nn.Conv2D(16, 12, 3, padding=1)
            self.shuffle = nn.PixelShuffle(2)
            self.up = nn.Conv2DTranspose(3, 3, 4, stride=2, padding=1)

        def forward(self, image):
            y = self.act(self.bn(self.c1(image)))
            y = y * F.sigmoid(self.excite(F.relu(self.squeeze(F.adaptive_avg_pool2d(y, 1)))))
            y = F.gelu(self.norm(y.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2]))
            y = F.interpolate(self.shuffle(self.c2(y)), size=[16, 16], mode="bilinear")
            return self.up(y) + F.interpolate(image, size=[32, 32], mode="nearest")

    folder = sys.argv[1]
    paddle.seed(0)
    net = Net()
    net.eval()
    spec = [paddle.static.InputSpec(shape=[1, 3, 16, 16], dtype="float32", name="image")]
    paddle.jit.save(net, folder + "/model", input_spec=spec)
    paddle2onnx.export(folder + "/model.json", folder + "/model.pdiparams", folder + "/net.onnx", opset_version=13)
    x = paddle.to_tensor(np.load(folder + "/x.npy"), stop_gradient=False)
    y = net(x)
    (y * paddle.to_tensor(np.load(folder + "/dy.npy"))).sum().backward()
    np.save(folder + "/y.npy", y.numpy())
    np.save(folder + "/grad.npy", x.grad.numpy())
''')


def test_paddle_export_forward_and_vjp(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.random((1, 3, 16, 16), dtype=np.float32)
    dy = rng.normal(size=(1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "dy.npy", dy)
    # paddle2onnx terminates the interpreter on conversion errors: keep it out of pytest's process.
    # Paddle's dy2static reads the layer's source, so the script must be a file.
    script = tmp_path / "export.py"
    script.write_text(_EXPORT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    model = load_model(tmp_path / "net.onnx")
    assert (model.io.layout, model.io.scale) == ("NCHW", 2)
    np.testing.assert_allclose(model.run(x), np.load(tmp_path / "y.npy"), atol=1e-4)
    expected = np.load(tmp_path / "grad.npy")
    assert np.abs(model.vjp(x, dy) - expected).max() < 1e-5 * np.abs(expected).max()
