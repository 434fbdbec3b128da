"""PaddlePaddle: `.pdparams` / `.pdiparams` state_dicts (with an architecture) exported by paddle2onnx.

Files are read by :mod:`exporters.paddle_pickle`, which builds numpy arrays and containers
only; a file that needs anything else (a pickled object, a call) would run code, so it is
refused unless the user passes ``trust_pickle`` (then it may even hold a whole pickled Layer).
The weights go into our Paddle twin of the recognised architecture
(:mod:`exporters.architectures.paddle_nets`) or the user's `--arch` factory; `paddle.jit.save`
traces it with dynamic batch, height and width, and paddle2onnx converts the saved program in a
child process, because it kills the whole interpreter on some ops it cannot convert.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, Self, cast

import numpy as np

from exporters import architectures
from exporters.base import (
    ExportError,
    ExportRequest,
    ExportResult,
    finish_export,
    quiet_framework,
    require,
    unwrap_state_dict,
    version,
)
from exporters.paddle_pickle import CodeInPickle, load_arrays
from verifier.errors import first_line

_SUFFIXES = {".pdparams", ".pdiparams"}
_CHECK_SIZE = 32
_OPSET = 17
#: paddle2onnx 2.1 declares onnx<=1.17 but converts in C++: installed apart so onnx stays current.
_PADDLE2ONNX_INSTALL = 'pip install --no-deps "paddle2onnx==2.1.*"'
#: The conversion, run by a child interpreter: program, parameters, output, opset.  No optimize_tool:
#: its optional passes would import onnxoptimizer / polygraphy, and verifier normalises the graph anyway.
_CONVERT = ("import sys, paddle2onnx; "
            "paddle2onnx.export(*sys.argv[1:4], opset_version=int(sys.argv[4]), optimize_tool=None)")
_TWINS = "exporters.architectures.paddle_nets"
#: paddle.jit.save also writes `.pdiparams`, in its own binary format, beside its program.
_JIT_SAVED = ("; parameters saved by paddle.jit.save are not supported: re-save the layer's state_dict "
              "with paddle.save, or convert its .json/.pdmodel program with paddle2onnx")


class _Layer(Protocol):
    """The paddle.nn.Layer methods used here (paddle itself is imported only when an export runs)."""

    def state_dict(self) -> Mapping[str, Any]: ...
    def set_state_dict(self, state_dict: Mapping[str, Any]) -> object: ...
    def eval(self) -> Self: ...


def import_paddle():
    """paddle, imported quietly: its import warns about ccache and its C++ logs warnings to stderr,
    which must hold nothing but a one-line error."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # read once, when paddle's C++ core loads
    with quiet_framework():
        return require("paddle", PaddleExporter.extra)


def load_weights(path: Path, trust_pickle: bool):
    """The file's contents with tensors as numpy arrays; code runs only for a trusted pickle."""
    try:
        return load_arrays(path)
    except CodeInPickle as exc:
        if not trust_pickle:
            raise ExportError(f"{path} is a pickle that runs code when loaded (it calls {exc}), not plain "
                              "weights; refusing it. Re-save its state_dict with paddle.save, or, if you "
                              "trust the file's author, export it with `verifier export --trust-pickle`") from exc
    except Exception as exc:  # not a pickle: its bytes provoke whatever error the unpickler hits
        raise ExportError(f"cannot read {path} as a Paddle state_dict (paddle.save pickle): {first_line(exc)}"
                          f"{_JIT_SAVED if path.suffix.lower() == '.pdiparams' else ''}") from exc
    try:
        return load_arrays(path, trusted=True)
    except Exception as exc:
        raise ExportError(f"cannot unpickle {path}: {first_line(exc)} (is the code that defined it importable?)") \
            from exc


def _weights(paddle, loaded, path: Path) -> dict[str, np.ndarray]:
    """name -> numpy array, from a (possibly wrapped) state_dict of arrays or paddle Tensors."""
    weights = {}
    for name, value in unwrap_state_dict(loaded, path).items():
        array = value.numpy() if isinstance(value, paddle.Tensor) else value
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            raise ExportError(f"'{name}' in {path} is not a numeric tensor (found {type(value).__name__})")
        weights[name] = array
    return weights


def _twin(arch: str, path: Path) -> str:
    """Our Paddle definition of a recognised architecture (same factory name as torch_nets')."""
    factory = arch.rpartition(":")[2]
    if not hasattr(importlib.import_module(_TWINS), factory):
        raise ExportError(f"{path} holds {factory} weights, but verifier has no Paddle definition of {factory}: "
                          "give one with --arch module:factory")
    return f"{_TWINS}:{factory}"


def build_layer(paddle, loaded, request: ExportRequest):
    """(layer in eval mode, architecture description or None), weights set strictly."""
    if isinstance(loaded, paddle.nn.Layer):
        return loaded.eval(), None
    built = architectures.build(_weights(paddle, loaded, request.source), request,
                                lambda arch: _twin(arch, request.source))
    layer, weights = cast(_Layer, built.model), built.weights  # the Paddle factory's nn.Layer
    expected = {name: tensor.numpy() for name, tensor in layer.state_dict().items()}
    architectures.check_names({name: array.shape for name, array in expected.items()}, weights, built.arch)
    layer.set_state_dict({name: weights[name].astype(array.dtype) for name, array in expected.items()})
    return layer.eval(), built.description


def _infer_channels(paddle, layer) -> int:
    for sublayer in layer.sublayers(include_self=True):
        if isinstance(sublayer, paddle.nn.Conv2D | paddle.nn.Conv2DTranspose):
            return sublayer._in_channels
    raise ExportError("cannot infer the input channels; pass --input-shape C,H,W")


#: How paddle2onnx (which catches its own exceptions and prints them, coloured) states its error.
_P2O_ERROR = re.compile(r"Failed to convert PaddlePaddle model: (.*?)(\x1b\[0m)?$")


def _failure(done: subprocess.CompletedProcess) -> str:
    """paddle2onnx's own error when it printed one, else the child's last line of stderr."""
    reasons = [found.group(1) for line in done.stdout.splitlines() if (found := _P2O_ERROR.search(line))]
    last = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return (reasons or last or [f"exit status {done.returncode}"])[-1]


def convert(paddle, layer, channels: int, target: Path) -> None:
    """paddle.jit.save with dynamic N, H, W, then paddle2onnx in a child process onto `target`."""
    with tempfile.TemporaryDirectory() as folder:
        spec = [paddle.static.InputSpec([None, channels, None, None], "float32", "image")]
        try:
            with quiet_framework():
                paddle.jit.save(layer, f"{folder}/model", input_spec=spec)
        except Exception as exc:  # dy2static fails on whatever Python it cannot trace
            raise ExportError(f"paddle.jit.save cannot trace the model: {first_line(exc)}") from exc
        program = next((f"{folder}/model{suffix}" for suffix in (".json", ".pdmodel")
                        if Path(f"{folder}/model{suffix}").exists()), None)
        if program is None:
            raise ExportError("paddle.jit.save wrote no program to convert")
        done = subprocess.run([sys.executable, "-c", _CONVERT, program, f"{folder}/model.pdiparams", str(target),
                               str(_OPSET)], capture_output=True, text=True)
        if done.returncode != 0 or target.stat().st_size == 0:
            raise ExportError(f"paddle2onnx cannot convert the model: {_failure(done)}")


def export_in_child(request: ExportRequest, target: Path) -> ExportResult:
    """The same export by `verifier export` in a fresh interpreter.

    paddle 3.3 segfaults when imported after TensorFlow in one process (an audit or test session
    that exported a Keras file first), so then the Paddle export runs where TensorFlow is not loaded.
    """
    import json

    command = [sys.executable, "-m", "verifier", "export", str(request.source), "-o", str(target),
               "--framework", PaddleExporter.name, "--json"]
    if request.arch:
        command += ["--arch", request.arch]
    if request.arch_kwargs:
        command += ["--arch-kwargs", json.dumps(request.arch_kwargs)]
    if request.input_shape:
        command += ["--input-shape", ",".join(map(str, request.input_shape))]
    command += [] if request.check else ["--no-check"]
    command += ["--trust-pickle"] if request.trust_pickle else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line.removeprefix("verifier: error: ").strip() for line in done.stderr.splitlines() if line.strip()]
        raise ExportError(lines[-1] if lines else f"the Paddle export's process failed ({done.returncode})")
    fields = json.loads(done.stdout)
    return ExportResult(**{**fields, "output": str(request.output), "value_range": tuple(fields["value_range"])})


class PaddleExporter:
    """paddle.jit.save + paddle2onnx."""

    name = "paddle"
    extra = "paddle"

    def accepts(self, path: Path) -> bool:
        return path.suffix.lower() in _SUFFIXES

    def export(self, request: ExportRequest, target: Path) -> ExportResult:
        if "tensorflow" in sys.modules and "paddle" not in sys.modules:
            return export_in_child(request, target)
        loaded = load_weights(request.source, request.trust_pickle)
        paddle = import_paddle()
        require("paddle2onnx", self.extra, _PADDLE2ONNX_INSTALL)
        layer, architecture = build_layer(paddle, loaded, request)
        shape = request.input_shape or (_infer_channels(paddle, layer), _CHECK_SIZE, _CHECK_SIZE)
        convert(paddle, layer, shape[0], target)
        example = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
        with paddle.no_grad():
            native = layer(paddle.to_tensor(example)).numpy()
        return finish_export(target, request, native, example, framework="paddle",
                             framework_version=paddle.__version__, exporter="paddle2onnx.export",
                             exporter_version=version("paddle2onnx"), layout="NCHW", value_range=(0.0, 1.0),
                             architecture=architecture)
