"""PyTorch models exported by the dynamo and legacy exporters: forward and VJP match torch autograd.

Op survey (torch 2.13; dynamo: opset 20, static shapes; legacy: opset 17, dynamic H/W).  Ops are
"native" (ORT differentiates them), "lowered" (rewritten by a :mod:`verifier.graph.lowering` rule) or
"folded" (shape-only, made constants by :mod:`verifier.graph.specialise`).  Nothing failed, and no
dynamo export needed the skip fallback below.

- DnCNN: native Conv, Relu, Sub (legacy: + Identity); both exporters fold BN into the Conv.
  Unoptimised exports keep it: lowered BatchNormalization; dynamo optimize=False also emits
  Shape/Expand/CastLike(constant, activation) for conv biases, all folded (CastLike needed the
  type-only-input rule in `specialise`, as ORT has no CastLike gradient).
- FSRCNN: native Conv, Add; lowered PRelu, ConvTranspose, Resize (cubic: the bicubic path).
- ESPCN: native Conv, Tanh, Add; lowered DepthToSpace (PixelShuffle), Resize (cubic).
- EDSR: native Conv, Relu, Add, Mul; lowered DepthToSpace, Resize (cubic); folded Constant (legacy).
- RCAN: native Conv, Relu, Add, Mul, Sigmoid, ReduceMean (dynamo) or GlobalAveragePool (legacy);
  lowered DepthToSpace, Resize (cubic).
- Window attention: native Conv, MatMul, Softmax, Add, Mul, Reshape, Transpose, Squeeze, Slice
  (dynamo) or Split (legacy), Erf/Div (legacy GELU); lowered LayerNormalization, Gelu (dynamo,
  opset 20); folded (legacy) Shape, Gather, Unsqueeze, Concat, Cast, Pow, Constant.
- UNet: native Conv, Relu, Concat, Add; lowered ConvTranspose, Resize (linear, half_pixel);
  folded Constant (legacy).

Legacy exports are also checked at a second, non-square size, so the dynamic axes are exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from checks import rel_error

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")  # the dynamo exporter

from models import torch_archs  # noqa: E402
from verifier import Model, load_model  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.frameworks]

# name: (factory, channels, export size, scale, second size for the dynamic legacy export (H, W))
ARCHS: dict[str, tuple[Callable[[], torch.nn.Module], int, int, int, tuple[int, int]]] = {
    "dncnn": (lambda: torch_archs.DnCNN(channels=1, depth=5, width=16), 1, 16, 1, (12, 20)),
    "fsrcnn": (lambda: torch_archs.FSRCNN(scale=3, channels=1, d=16, s=8, m=2), 1, 16, 3, (12, 20)),
    "espcn": (lambda: torch_archs.ESPCN(scale=2, channels=3, width=16), 3, 16, 2, (12, 20)),
    "edsr": (lambda: torch_archs.EDSR(scale=4, channels=3, width=16, blocks=2), 3, 16, 4, (12, 20)),
    "rcan": (lambda: torch_archs.RCAN(scale=2, channels=3, width=16, groups=1, blocks=2), 3, 16, 2, (12, 20)),
    "window_transformer": (lambda: torch_archs.WindowTransformer(channels=3, width=16, blocks=1), 3, 24, 1,
                           (16, 32)),
    "unet": (lambda: torch_archs.UNet(channels=3, width=8), 3, 16, 1, (12, 20)),
}


def _seeded(factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Random weights, eval mode, and BN running statistics far from (0, 1) so BN is not the identity.

    The SR nets start their last layer at zero (so that they start as bicubic upscaling): it is made random
    here, or nothing before it would reach the output and its gradient would go untested.
    """
    torch.manual_seed(0)
    net = torch_archs.randomise_zero_layers(factory()).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net


def _export(net: torch.nn.Module, x: torch.Tensor, path: Path, dynamo: bool, fold: bool = True) -> None:
    if dynamo:
        torch.onnx.export(net, (x,), str(path), dynamo=True, optimize=fold, input_names=["image"],
                          output_names=["out"])
    else:
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=17, do_constant_folding=fold,
                          input_names=["image"], output_names=["out"], dynamic_axes={"image": {2: "h", 3: "w"}})


def _check_against_torch(model: Model, net: torch.nn.Module, x: torch.Tensor) -> None:
    """run() equals the torch forward, vjp() equals torch autograd of sum(dy * net(x))."""
    with torch.no_grad():
        expected_y = net(x).numpy()
    np.testing.assert_allclose(model.run(x.numpy()), expected_y, atol=1e-4)
    dy = np.random.default_rng(2).normal(size=expected_y.shape).astype(np.float32)
    xt = x.clone().requires_grad_(True)
    (net(xt) * torch.from_numpy(dy)).sum().backward()
    assert rel_error(model.vjp(x.numpy(), dy), xt.grad.numpy()) < 1e-5


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_torch_export_matches_autograd(tmp_path: Path, arch: str, dynamo: bool):
    factory, channels, size, scale, other_size = ARCHS[arch]
    net = _seeded(factory)
    x = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(1))
    path = tmp_path / f"{arch}.onnx"
    try:
        _export(net, x, path, dynamo)
    except Exception as exc:  # the exporter's failure, not verifier's: report, do not fail
        if not dynamo:
            raise
        pytest.skip(f"torch dynamo exporter cannot export {arch}: {type(exc).__name__}: {exc}")
    model = load_model(path)
    assert (model.io.layout, model.io.channels, model.io.scale) == ("NCHW", channels, scale)
    _check_against_torch(model, net, x)
    if not dynamo:
        x = torch.rand(1, channels, *other_size, generator=torch.Generator().manual_seed(3))
        _check_against_torch(model, net, x)


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_unfolded_batch_norm(tmp_path: Path, dynamo: bool):
    """Without exporter optimisations BatchNormalization stays in the graph and must be lowered."""
    net = _seeded(lambda: torch_archs.DnCNN(channels=1, depth=4, width=8))
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "dncnn_bn.onnx"
    _export(net, x, path, dynamo, fold=False)
    assert "BatchNormalization" in {node.op_type for node in onnx.load(str(path)).graph.node}
    model = load_model(path)
    assert "BatchNormalization" not in {node.op_type for node in model.static((1, 1, 16, 16)).model.graph.node}
    _check_against_torch(model, net, x)
