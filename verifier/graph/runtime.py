"""Access to the onnxruntime-training build.

`onnxruntime-training` and plain `onnxruntime` install the same top-level module;
whichever was installed last wins.  Plain onnxruntime lacks the gradient graph
builder, so we check for it explicitly and say how to repair the environment
instead of failing later with an obscure ImportError.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol

from verifier.errors import RuntimeMissingError, UnsupportedModelError, first_line

_REPAIR = (
    "pip uninstall -y onnxruntime onnxruntime-training-cpu && "
    "pip install onnxruntime-training-cpu==1.19.2"
)


class Session(Protocol):
    """What verifier uses of an onnxruntime InferenceSession (onnxruntime ships no type hints)."""

    def run(self, output_names: list[str] | None, input_feed: Mapping[str, Any]) -> list[Any]: ...
    def get_inputs(self) -> list[Any]: ...
    def get_outputs(self) -> list[Any]: ...


@functools.cache
def ort() -> ModuleType:
    """Return the `onnxruntime` module after checking it is the training build."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeMissingError(f"onnxruntime-training is not installed; run: {_REPAIR}") from exc
    try:
        from onnxruntime.capi._pybind_state import GradientGraphBuilder  # noqa: F401
    except ImportError as exc:
        raise RuntimeMissingError(
            f"onnxruntime {onnxruntime.__version__} has no training ops: plain onnxruntime was "
            f"installed over onnxruntime-training (a package such as jax2onnx pulls it in); "
            f"run: {_REPAIR}"
        ) from exc
    return onnxruntime


def make_session(model_bytes: bytes, threads: int | None = None, exact: bool = False) -> Session:
    """Create a CPU inference session; load failures become one-line UnsupportedModelErrors.

    `exact` keeps to basic graph optimisations: onnxruntime's extended level fuses
    QuantizeLinear/DequantizeLinear around Conv into integer kernels whose u8s8 path
    saturates on x86 CPUs without VNNI, so a quantised model's outputs would depend on
    the machine (seen here: 0.12 off the ONNX semantics, 0.014 with basic optimisations).
    """
    rt = ort()
    opts = rt.SessionOptions()
    opts.log_severity_level = 4
    if exact:
        opts.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        # onnxruntime prints "EP Error ... Falling back" to stdout when a session fails (seen on fuzzed
        # models): stdout is where `--json` writes its one object, so the chatter goes nowhere
        with contextlib.redirect_stdout(io.StringIO()):
            return rt.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise _translate_session_error(exc) from exc


_NO_KERNEL = re.compile(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'")


def _translate_session_error(exc: Exception) -> Exception:
    text = str(exc)
    match = _NO_KERNEL.search(text)
    if match:
        op, version, node = match.groups()
        return UnsupportedModelError(
            f"onnxruntime has no CPU kernel for {op} (opset {version}) at node '{node}'"
        )
    return UnsupportedModelError(f"onnxruntime could not load the graph: {first_line(exc, 300)}")
