"""PyTorch models exported by the dynamo and legacy exporters: forward and VJP match torch autograd.

Ops the exporters emit for these nets and how verifier handles them (torch 2.13):
native: Conv, Relu, Tanh, Sigmoid, Add, Mul, Sub, Div, MatMul, Gemm, Softmax, Reshape,
Transpose, Concat, GlobalAveragePool / ReduceMean, Erf, Sqrt, Pow, Slice, Split;
lowered: PRelu, DepthToSpace (PixelShuffle), ConvTranspose, Resize, LayerNormalization,
Gelu (opset 20), BatchNormalization (when not folded); folded: Shape/Gather/Concat shape
arithmetic, Constant, If on shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from checks import rel_error

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")  # the dynamo exporter

from models import torch_archs  # noqa: E402
from verifier import load_model  # noqa: E402

ARCHS = {
    "dncnn": (lambda: torch_archs.DnCNN(channels=1, depth=5, width=16), 1, 16, 1),
    "fsrcnn": (lambda: torch_archs.FSRCNN(scale=3, channels=1, d=16, s=8, m=2), 1, 12, 3),
    "espcn": (lambda: torch_archs.ESPCN(scale=2, channels=3, width=16), 3, 16, 2),
    "edsr": (lambda: torch_archs.EDSR(scale=4, channels=3, width=16, blocks=2), 3, 12, 4),
    "rcan": (lambda: torch_archs.RCAN(scale=2, channels=3, width=16, groups=1, blocks=2), 3, 16, 2),
    "window_transformer": (lambda: torch_archs.WindowTransformer(channels=3, width=16, blocks=1), 3, 16, 1),
    "unet": (lambda: torch_archs.UNet(channels=3, width=8), 3, 16, 1),
}


def _seeded(factory) -> torch.nn.Module:
    torch.manual_seed(0)
    net = factory().eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # make BN a real affine map, not identity
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_torch_export_matches_autograd(tmp_path: Path, arch: str, dynamo: bool):
    factory, channels, size, scale = ARCHS[arch]
    net = _seeded(factory)
    x = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(1))
    path = tmp_path / f"{arch}.onnx"
    if dynamo:
        torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["image"], output_names=["out"])
    else:
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, input_names=["image"],
                          output_names=["out"], dynamic_axes={"image": {2: "h", 3: "w"}})
    model = load_model(path)
    assert (model.io.layout, model.io.channels, model.io.scale) == ("NCHW", channels, scale)

    x_np = x.numpy()
    with torch.no_grad():
        expected_y = net(x).numpy()
    np.testing.assert_allclose(model.run(x_np), expected_y, atol=1e-4)
    dy = np.random.default_rng(2).normal(size=expected_y.shape).astype(np.float32)
    xt = x.clone().requires_grad_(True)
    (net(xt) * torch.from_numpy(dy)).sum().backward()
    assert rel_error(model.vjp(x_np, dy), xt.grad.numpy()) < 1e-5
