"""A KServe v2 REST server written with the standard library, for the endpoint tests.

It implements exactly what verifier's client uses (``GET /v2/health/ready``, ``GET /v2/models/NAME``,
``POST /v2/models/NAME/infer`` with JSON tensors) and serves ONNX files through onnxruntime, on 127.0.0.1
at a free port.  Unlike a production server it can also misbehave on purpose (:class:`Served`'s `fault`),
which is how the tests show that a slow, broken or lying endpoint gives one error line; and it counts the
inference requests it received, so the tests can check the client's own count.  The real third-party
server (MLServer) is exercised by ``test_endpoint_mlserver.py`` when the ``serve`` extra is installed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

#: What a served model can do wrong (None: nothing).
FAULTS = ("slow", "wrong-shape", "nan", "error", "garbage", "flaky", "auth", "redirect")
TOKEN = "Bearer sesame"


@dataclass(frozen=True)
class Served:
    """One model: an NCHW [0, 1] ONNX file, served in `layout` and `value_range`, optionally at a fixed size."""

    path: Path
    fault: str | None = None
    layout: str = "NCHW"
    value_range: tuple[float, float] = (0.0, 1.0)
    fixed: tuple[int, int] | None = None  # declared (and enforced) input height and width
    channels: int = 1
    delay: float = 1.0  # how long a "slow" model takes


class _Handler(BaseHTTPRequestHandler):
    server: KServeServer

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _send(self, code: int, document: object | None = None, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _model(self, name: str) -> Served | None:
        served = self.server.models.get(name)
        if served is None:
            self._send(404, {"error": f"Model with name {name} does not exist."})
        elif served.fault == "auth" and self.headers.get("Authorization") != TOKEN:
            self._send(401, {"error": "missing or wrong token"})
            return None
        elif served.fault == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.2:9/v2/models/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return served

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts == ["v2", "health", "ready"]:
            self._send(200, raw=b"")  # the status says it; Triton and MLServer send no body
        elif len(parts) != 3 or parts[:2] != ["v2", "models"]:
            self._send(404, {"error": "not found"})
        elif served := self._model(parts[2]):
            self._send(200, _metadata(parts[2], served))

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        if len(parts) != 4 or parts[:2] != ["v2", "models"] or parts[3] != "infer":
            self._send(404, {"error": "not found"})
            return
        served = self._model(parts[2])
        if served is None:
            return
        self.server.queries[parts[2]] += 1
        count = self.server.queries[parts[2]]
        if served.fault == "error" or (served.fault == "flaky" and count <= 2):
            self._send(500 if served.fault == "error" else 503, {"error": "the model crashed"})
            return
        if served.fault == "garbage":
            self._send(200, raw=b"<html>upstream gateway says hello</html>")
            return
        if served.fault == "slow":  # answers when the client has given up (and runs no model: at the end of the
            time.sleep(served.delay)  # tests, onnxruntime in a daemon thread would outlive the interpreter)
            self._send(503, {"error": "too late"})
            return
        try:
            tensor = json.loads(body)["inputs"][0]
            x = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self._send(400, {"error": f"bad request: {exc}"})
            return
        if served.fixed is not None and x.shape[1:3] != served.fixed and x.shape[2:] != served.fixed:
            self._send(400, {"error": f"input must be {served.fixed[0]}x{served.fixed[1]}"})
            return
        y = self.server.run(parts[2], served, x)
        if served.fault == "wrong-shape" and count > 1:  # the first answer (the scale probe) is right
            y = y[..., :-1] if served.layout == "NCHW" else y[:, :, :-1]
        elif served.fault == "nan":
            y = y.copy()
            y.flat[0] = np.nan
        # NaN is not JSON; the protocol's servers send it as Python's json module does
        self._send(200, {"model_name": parts[2], "outputs": [
            {"name": "output", "shape": list(y.shape), "datatype": "FP32", "data": y.ravel().tolist()}]})


def _metadata(name: str, served: Served) -> dict:
    height, width = served.fixed or (-1, -1)
    batch = 1 if served.fixed else -1
    shape = [batch, served.channels, height, width] if served.layout == "NCHW" else [batch, height, width,
                                                                                       served.channels]
    return {"name": name, "versions": ["1"], "platform": "onnxruntime_onnx",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": shape}],
            "outputs": [{"name": "output", "datatype": "FP32", "shape": shape}]}


class KServeServer(ThreadingHTTPServer):
    """The server; a context manager that serves from a daemon thread and stops on exit."""

    daemon_threads = True

    def __init__(self, models: dict[str, Served]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.models = models
        self.queries: Counter[str] = Counter()
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (a timeout test) leaves a broken pipe: not worth a traceback."""

    def run(self, name: str, served: Served, x: np.ndarray) -> np.ndarray:
        """The model on `x` given in the served convention, answered in it."""
        import onnxruntime

        with self._lock:
            if name not in self._sessions:
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = 1
                self._sessions[name] = onnxruntime.InferenceSession(str(served.path), options,
                                                                    providers=["CPUExecutionProvider"])
        session = self._sessions[name]
        lo, hi = served.value_range
        nchw = x.transpose(0, 3, 1, 2) if served.layout == "NHWC" else x
        nchw = ((nchw - lo) / (hi - lo)).astype(np.float32)
        (y,) = session.run(None, {session.get_inputs()[0].name: nchw})
        y = y * (hi - lo) + lo
        return (y.transpose(0, 2, 3, 1) if served.layout == "NHWC" else y).astype(np.float32)

    def __enter__(self) -> KServeServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
