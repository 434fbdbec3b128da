"""The endpoint client against a real third-party KServe v2 server: MLServer (the ``serve`` extra), started on
127.0.0.1 serving the committed trained models through onnxruntime (mlserver_runtime.py).  The endpoint's
verdict equals the black-box file's; a model that crashes (HTTP 500) or answers NaN is one error line."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from trained import fingerprint

from verifier import load_model
from verifier.cli import main
from verifier.method import fingerprint_file
from verifier.method.fingerprint import Fingerprint
from verifier.method.verification import verify
from verifier.remote import endpoint
from verifier.remote.endpoint import EndpointSpec, connect

pytestmark = [pytest.mark.slow, pytest.mark.serve]
#: MLServer starts its REST, gRPC and metrics servers and loads the models: seconds, more on a loaded machine.
START_TIMEOUT = 120


@pytest.fixture(autouse=True)
def _local_and_quick(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(endpoint, "BACKOFF", 0.01)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlserver(trained_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """`mlserver start` on a folder holding the runtime and one model-settings.json per model; its base URL."""
    pytest.importorskip("mlserver", reason="MLServer is the serve extra: pip install -e .[serve]")
    folder = tmp_path_factory.mktemp("mlserver")
    shutil.copy(Path(__file__).parents[1] / "mlserver_runtime.py", folder)
    port = _free_port()
    (folder / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": _free_port(), "metrics_port": _free_port(),
        "metrics_endpoint": None, "parallel_workers": 0}))
    tensor = {"datatype": "FP32", "shape": [-1, 1, -1, -1]}
    for name, source, fault in (("owner", "owner", None), ("independent", "independent", None),
                                ("crashing", "owner", "error"), ("nan", "owner", "nan")):
        (folder / name).mkdir()
        (folder / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "mlserver_runtime.OnnxModel",
            "parameters": {"uri": str(trained_models[source]), "extra": {"fault": fault}},
            "inputs": [{"name": "input", **tensor}], "outputs": [{"name": "output", **tensor}]}))
    log = (folder / "mlserver.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "mlserver.cli.main", "start", str(folder)], cwd=folder,
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"MLServer did not start:\n{(folder / 'mlserver.log').read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def owner_fp(trained_models: dict[str, Path]) -> Fingerprint:
    return fingerprint(trained_models["owner"], trained_models)


@pytest.mark.parametrize(("name", "expected"), [("owner", "similar"), ("independent", "independent")])
def test_mlserver_verdict_equals_the_black_box_file(mlserver: str, owner_fp: Fingerprint,
                                                    trained_models: dict[str, Path], name: str, expected: str):
    suspect = connect(EndpointSpec.parse(mlserver, name))
    result = verify(owner_fp, suspect)
    black_box = verify(owner_fp, dataclasses.replace(load_model(trained_models[name]), original=None))
    assert result.verdict == black_box.verdict == expected
    assert result.score == pytest.approx(black_box.score, rel=1e-6)
    assert suspect.usage.queries == len(owner_fp.residuals) + 1 and suspect.usage.retries == 0


@pytest.mark.parametrize(("name", "message"), [("crashing", "HTTP 500"), ("nan", "non-finite"),
                                               ("missing", "HTTP 404")])
def test_mlserver_failures_are_one_line_exit_2(mlserver: str, owner_fp: Fingerprint, tmp_path: Path, name: str,
                                               message: str):
    fingerprint_file.save(owner_fp, tmp_path / "owner.vfp")
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "owner.vfp"), "--endpoint", mlserver,
                                       "--model", name])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("verifier: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.output
