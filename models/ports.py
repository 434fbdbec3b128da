"""One DnCNN's weights written as PyTorch, Keras, Flax and Paddle files (ports of the same model).

Re-expressing a model in another framework changes its files and its ONNX graph (layout,
exporter, op choices) but not its function, so verifier must call every port `derived` from
the original.  Each writer fills the framework's own definition
(`exporters/architectures/*_nets.py`) from one framework-neutral set of weights and saves it
the way that framework's users do, so that `exporters.export` meets an ordinary file.
The only conversions are the kernel layout (torch and Paddle OIHW, Keras and Flax HWIO) and
the names of BatchNorm's statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: OIHW -> HWIO (Keras, Flax).
_HWIO = (2, 3, 1, 0)


@dataclass(frozen=True)
class DnCNNWeights:
    """A DnCNN's weights: conv kernels in OIHW with their biases (None without), and per middle
    layer with BatchNorm its (scale, shift, running mean, running variance); empty without BN."""

    kernels: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray | None, ...]
    norms: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]

    @classmethod
    def from_state_dict(cls, state: Mapping) -> DnCNNWeights:
        """From a torch DnCNN state_dict with `body.N` names (our torch_nets.DnCNN, the zoo's DnCNN)."""
        arrays = {key: np.asarray(value, dtype=np.float32) for key, value in state.items()
                  if not key.endswith("num_batches_tracked")}
        kernels, biases, norms = [], [], []
        for index in sorted({int(key.split(".")[1]) for key in arrays}):
            prefix = f"body.{index}."
            if prefix + "running_mean" in arrays:
                norms.append(tuple(arrays[prefix + name] for name in ("weight", "bias", "running_mean", "running_var")))
            else:
                kernels.append(arrays[prefix + "weight"])
                biases.append(arrays.get(prefix + "bias"))
        return cls(tuple(kernels), tuple(biases), tuple(norms))

    def kwargs(self) -> dict:
        """The hyper-parameters every framework's DnCNN definition takes."""
        width, channels = self.kernels[0].shape[:2]
        return {"channels": int(channels), "depth": len(self.kernels), "width": int(width),
                "batch_norm": bool(self.norms), "bias": self.biases[0] is not None}

    def layers(self, axes: tuple[int, ...] = (0, 1, 2, 3)):
        """Per layer: ('conv', index, [kernel transposed by `axes`, bias?]) then, for a middle layer
        with BN, ('bn', index, [scale, shift, mean, variance])."""
        norms = iter(self.norms)
        for index, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            yield "conv", index, [np.ascontiguousarray(kernel.transpose(axes)), *([] if bias is None else [bias])]
            if self.norms and 0 < index < len(self.kernels) - 1:
                yield "bn", index, list(next(norms))

    def flat(self, axes: tuple[int, ...] = (0, 1, 2, 3)) -> list[np.ndarray]:
        """Every array in layer order: the order of torch's and Paddle's state_dicts and Keras' weights."""
        return [array for _, _, arrays in self.layers(axes) for array in arrays]


def _fill_state(names: list[str], weights: DnCNNWeights, shapes: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Canonical arrays under a framework state_dict's names, in order, refusing any shape mismatch."""
    arrays = weights.flat()
    if [a.shape for a in arrays] != shapes:
        raise ValueError(f"weights {[a.shape for a in arrays]} do not fit the definition's {shapes}")
    return dict(zip(names, arrays, strict=True))


def write_torch(weights: DnCNNWeights, path: Path) -> None:
    """A state_dict of :class:`exporters.architectures.torch_nets.DnCNN`, saved with torch.save."""
    import torch

    from exporters.architectures.torch_nets import DnCNN

    state = DnCNN(**weights.kwargs()).state_dict()
    names = [name for name in state if not name.endswith("num_batches_tracked")]
    filled = _fill_state(names, weights, [tuple(state[n].shape) for n in names])
    state.update({name: torch.from_numpy(array) for name, array in filled.items()})
    torch.save(state, path)


def write_keras(weights: DnCNNWeights, path: Path) -> None:
    """:func:`exporters.architectures.keras_nets.build_dncnn` with the weights, saved as Keras HDF5 (`.h5`)."""
    from exporters.architectures.keras_nets import build_dncnn
    from exporters.base import quiet_framework

    with quiet_framework():  # Keras 3 warns that HDF5 is a legacy format; it is the one we read
        model = build_dncnn(**weights.kwargs())
        layers = [layer for layer in model.layers if layer.weights]
        for layer, (_, _, arrays) in zip(layers, weights.layers(_HWIO), strict=True):
            layer.set_weights(arrays)
        model.save(path)


def write_flax(weights: DnCNNWeights, path: Path) -> None:
    """:class:`exporters.architectures.flax_nets.DnCNN`'s variables, saved with flax.serialization (msgpack)."""
    from flax import serialization

    from exporters.architectures.flax_nets import dncnn_layout

    params: dict[str, dict] = {}
    stats: dict[str, dict] = {}
    for kind, index, arrays in weights.layers(_HWIO):
        if kind == "conv":
            params[f"conv_{index}"] = dict(zip(("kernel", "bias"), arrays, strict=False))  # bias optional
        else:
            params[f"bn_{index}"] = {"scale": arrays[0], "bias": arrays[1]}
            stats[f"bn_{index}"] = {"mean": arrays[2], "var": arrays[3]}
    variables = {"params": params, **({"batch_stats": stats} if stats else {})}
    if dncnn_layout(variables) != weights.kwargs():
        raise ValueError("the Flax variables do not match flax_nets.DnCNN")
    path.write_bytes(serialization.msgpack_serialize(variables))


def write_paddle(weights: DnCNNWeights, path: Path) -> None:
    """A state_dict of :class:`exporters.architectures.paddle_nets.DnCNN`, saved with paddle.save (`.pdparams`)."""
    import paddle

    from exporters.architectures.paddle_nets import DnCNN

    net = DnCNN(**weights.kwargs())
    state = net.state_dict()
    filled = _fill_state(list(state), weights, [tuple(tensor.shape) for tensor in state.values()])
    net.set_state_dict({name: paddle.to_tensor(array) for name, array in filled.items()})
    paddle.save(net.state_dict(), str(path))


@dataclass(frozen=True)
class Port:
    """How one framework's copy is written and which exporter reads it back."""

    framework: str  # the `exporters.EXPORTERS` name
    suffix: str
    write: Callable[[DnCNNWeights, Path], None]
    arch: str | None = None  # what an auditor passes as --arch: Paddle's weights do not name their architecture


PORTS = (Port("torch", ".pt", write_torch), Port("tensorflow", ".h5", write_keras),
         Port("flax", ".msgpack", write_flax),
         Port("paddle", ".pdparams", write_paddle, arch="exporters.architectures.paddle_nets:DnCNN"))
