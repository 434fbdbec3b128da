"""Suspects behind a KServe v2 REST endpoint: the verdict equals the black-box file's, every query is counted
and budgeted, and an endpoint that is slow, broken or lying gives one error line (verify) or one error row
(audit).  The server is the standard-library one in kserve_server.py, on 127.0.0.1, serving the committed
trained models through onnxruntime."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from kserve_server import TOKEN, KServeServer, Served
from trained import fingerprint

from verifier import load_model
from verifier.cli import main
from verifier.errors import EndpointError, InputError, QueryBudgetError
from verifier.method import fingerprint_file
from verifier.method.fingerprint import Fingerprint
from verifier.method.verification import verify
from verifier.remote import endpoint, kserve
from verifier.remote.endpoint import EndpointSpec, connect


@pytest.fixture(autouse=True)
def _local_and_quick(monkeypatch: pytest.MonkeyPatch):
    """Requests to 127.0.0.1 never go through a proxy from the environment; retries wait 10 ms, not seconds."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(endpoint, "BACKOFF", 0.01)


@pytest.fixture(scope="module")
def owner_fp(trained_models: dict[str, Path]) -> Fingerprint:
    return fingerprint(trained_models["owner"], trained_models)


@pytest.fixture(scope="module")
def files(trained_models: dict[str, Path], owner_fp: Fingerprint, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The fingerprint file, and the owner exported for one 48x40 frame (a fixed-size service's model)."""
    folder = tmp_path_factory.mktemp("endpoint")
    fixed = onnx.load(str(trained_models["owner"]))
    for dim, value in zip(fixed.graph.input[0].type.tensor_type.shape.dim, (1, 1, 48, 40), strict=True):
        dim.dim_value = value
    onnx.save(fixed, str(folder / "fixed.onnx"))
    fingerprint_file.save(owner_fp, folder / "owner.vfp")
    return {"fp": folder / "owner.vfp", "fixed": folder / "fixed.onnx", "folder": folder}


@pytest.fixture(scope="module")
def server(trained_models: dict[str, Path], files: dict):
    owner = trained_models["owner"]
    models = {"owner": Served(owner), "independent": Served(trained_models["independent"]),
              "nhwc": Served(owner, layout="NHWC", value_range=(0.0, 255.0)),
              "fixed": Served(files["fixed"], fixed=(48, 40)),
              **{fault: Served(owner, fault=fault) for fault in ("slow", "wrong-shape", "nan", "error", "garbage",
                                                                 "flaky", "auth", "redirect")}}
    with KServeServer(models) as running:
        yield running


# -- verdicts --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "file", "value_range", "expected"), [
    ("owner", "owner", None, "similar"),
    ("independent", "independent", None, "independent"),
    ("nhwc", "owner", (0.0, 255.0), "similar"),  # NHWC read from the metadata's shape, [0, 255] from --range
    ("fixed", "fixed", None, "similar"),  # probes mirrored onto the endpoint's 48x40 canvas, as for the file
])
def test_endpoint_verdict_equals_the_black_box_file(server: KServeServer, owner_fp: Fingerprint, files: dict,
                                                    trained_models: dict[str, Path], name: str, file: str,
                                                    value_range, expected: str):
    suspect = connect(EndpointSpec.parse(server.url, name, value_range=value_range))
    result = verify(owner_fp, suspect)
    path = files["fixed"] if file == "fixed" else trained_models[file]
    black_box = verify(owner_fp, dataclasses.replace(load_model(path), original=None))
    assert result.verdict == black_box.verdict == expected
    assert [piece.kind for piece in result.evidence] == ["behaviour"]
    # probes travel as JSON numbers that read back to the same float32: the scores are the file's
    assert result.score == pytest.approx(black_box.score, rel=1e-6)
    # one query per probe, plus one that measured the scale unless the metadata fixed the output size
    probes = len(owner_fp.residuals)
    assert suspect.usage.queries == probes + (name != "fixed") == server.queries[name]
    assert suspect.usage.retries == 0
    assert suspect.io.layout == ("NHWC" if name == "nhwc" else "NCHW")


def test_retries_are_counted(server: KServeServer, owner_fp: Fingerprint):
    """The flaky model answers 503 twice: both attempts are retried, counted and charged to the budget."""
    suspect = connect(EndpointSpec.parse(f"{server.url}/v2/models/flaky"))
    assert verify(owner_fp, suspect).verdict == "similar"
    assert suspect.usage.retries == 2
    assert suspect.usage.queries == len(owner_fp.residuals) + 1 + 2 == server.queries["flaky"]


def test_query_budget(server: KServeServer, owner_fp: Fingerprint):
    suspect = connect(EndpointSpec.parse(server.url, "owner", max_queries=3))  # one query spent on the scale
    with pytest.raises(QueryBudgetError, match=f"needs {len(owner_fp.residuals)} more queries but the budget "
                                               "allows 2 of 3"):
        suspect.expect(len(owner_fp.residuals))
    image = owner_fp.probes.inputs[:1]
    suspect.run(image)
    suspect.run(image)
    before = server.queries["owner"]
    with pytest.raises(QueryBudgetError, match="query budget of 3 spent"):
        suspect.run(image)
    assert suspect.usage.queries == 3 and server.queries["owner"] == before  # refused before sending


def test_paper_fingerprints_need_a_model(server: KServeServer, owner_fp: Fingerprint):
    paper = dataclasses.replace(owner_fp, settings=dataclasses.replace(owner_fp.settings, method="paper"))
    with pytest.raises(InputError, match="needs its gradients"):
        verify(paper, connect(EndpointSpec.parse(server.url, "owner")))


@pytest.mark.parametrize(("name", "timeout", "message"), [
    ("slow", 0.2, "no answer within the timeout (0.2 s) (tried 3 times)"),
    ("nan", None, "contains non-finite values"),
    ("error", None, "HTTP 500: the model crashed (tried 3 times)"),
    ("garbage", None, "the inference response is not JSON"),
    ("auth", None, "HTTP 401: missing or wrong token (give credentials with --header"),
    ("redirect", None, "HTTP 302 Found to http://127.0.0.2:9/v2/models/elsewhere (redirects are not followed"),
    ("nope", None, "HTTP 404: Model with name nope does not exist."),
])
def test_bad_endpoints_raise_one_error(server: KServeServer, name: str, timeout: float | None, message: str):
    with pytest.raises(EndpointError, match=re.escape(message)) as caught:
        connect(EndpointSpec.parse(server.url, name, timeout=timeout or 30.0))
    assert "\n" not in str(caught.value)


def test_wrong_shape_is_one_error(server: KServeServer, owner_fp: Fingerprint):
    suspect = connect(EndpointSpec.parse(server.url, "wrong-shape"))  # the scale probe is answered right
    with pytest.raises(EndpointError, match=re.escape("answered shape [1, 1, 32, 31] for a [1, 1, 32, 32] input; "
                                                      "expected [1, 1, 32, 32]")):
        verify(owner_fp, suspect)


def test_connection_refused_is_retried_then_one_error():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EndpointError, match=r"Connection refused.*tried 3 times"):
        connect(EndpointSpec.parse(f"http://127.0.0.1:{port}", "owner"))


# -- the command line ------------------------------------------------------------------------------

def _verify(files: dict, *args: str):
    return CliRunner().invoke(main, ["verify", str(files["fp"]), *args])


def test_cli_verify_endpoint_text_and_json(server: KServeServer, files: dict, owner_fp: Fingerprint):
    queries = len(owner_fp.residuals) + 1
    text = _verify(files, "--endpoint", server.url, "--model", "auth", "--header", f"Authorization: {TOKEN}")
    assert text.exit_code == 3, text.output
    lines = text.stdout.splitlines()
    assert lines[0].startswith("similar (similar behaviour, lineage not shown)") and "decided by behaviour" in lines[0]
    assert lines[1].split()[:2] == ["*", "behaviour"]
    assert lines[2].split()[:3] == ["weights", "not", "available:"] and "inference endpoint" in lines[2]
    assert lines[3] == f"endpoint {server.url}/v2/models/auth: {queries} queries (budget 100, 0 retries)"
    assert TOKEN not in text.output  # header values are secrets: never printed
    report = _verify(files, "--endpoint", f"{server.url}/v2/models/owner", "--json", "--max-queries", "20")
    assert report.exit_code == 3, report.output
    document = json.loads(report.stdout)
    suspect = document["inputs"]["suspect"]
    assert suspect["endpoint"]["url"] == f"{server.url}/v2/models/owner" and suspect["endpoint"]["model"] == "owner"
    assert (suspect["queries"], suspect["max_queries"], suspect["retries"]) == (queries, 20, 0)
    assert suspect["io"]["layout"] == "NCHW" and suspect["io"]["scale"] == 1
    assert document["verdict"] == "similar" and [e["kind"] for e in document["evidence"]] == ["behaviour"]
    assert "weights" in document["unavailable"]


@pytest.mark.parametrize(("args", "message"), [
    (("--model", "slow", "--timeout", "0.2"), "no answer within the timeout"),
    (("--model", "wrong-shape"), "answered shape"),
    (("--model", "nan"), "non-finite values"),
    (("--model", "error"), "HTTP 500"),
    (("--model", "garbage"), "not JSON"),
    (("--model", "auth"), "HTTP 401"),
    (("--model", "owner", "--max-queries", "3"), "verifying needs 6 more queries but the budget allows 2 of 3"),
    (("--model", "owner", "--header", "Bad Name: x"), "is not a valid HTTP header name"),
])
def test_cli_bad_endpoint_is_one_line_exit_2(server: KServeServer, files: dict, args: tuple[str, ...], message: str):
    result = _verify(files, "--endpoint", server.url, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if not line.startswith("verifier: endpoint http")]  # the progress line
    assert len(errors) == 1 and errors[0].startswith("verifier: error:") and message in errors[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


# -- audits --------------------------------------------------------------------------------------

def test_audit_endpoints_one_row_each(server: KServeServer, files: dict, owner_fp: Fingerprint, tmp_path: Path):
    """[[endpoints]] in verifier.toml: a good endpoint is a row with its queries, a failing one an error row, and
    the audit goes on; the token comes from the environment."""
    entries = [("owner", ""), ("independent", ""), ("auth", 'headers = { Authorization = "Bearer ${TOKEN_X}" }'),
               ("error", ""), ("nan", ""), ("wrong-shape", ""), ("slow", "timeout = 0.2"),
               ("garbage", "max_queries = 3")]
    tables = "".join(f'\n[[endpoints]]\nname = "{name}-ep"\nurl = "{server.url}"\nmodel = "{name}"\n{extra}\n'
                     for name, extra in entries)
    config = tmp_path / "verifier.toml"
    config.write_text(f'[audit]\njobs = 1\ncache = "cache"\n\n[[owners]]\nfingerprint = "{files["fp"]}"\n{tables}')
    runner = CliRunner(env={"TOKEN_X": TOKEN.split()[1]})
    result = runner.invoke(main, ["audit", "--config", str(config), "--json", "--html", str(tmp_path / "a.html")])
    assert result.exit_code == 2, result.output  # error rows fail the default gate with exit 2
    document = json.loads(result.stdout)
    rows = {row["name"]: row for row in document["suspects"]}
    assert list(rows) == [f"{name}-ep" for name, _ in entries]
    for name in ("owner-ep", "auth-ep"):
        assert rows[name]["verdict"] == "similar" and rows[name]["format"] == "kserve-v2"
        assert rows[name]["endpoint"]["queries"] == len(owner_fp.residuals) + 1
        assert rows[name]["pairs"][0]["decided_by"] == "behaviour" and rows[name]["sha256"] is None
    assert rows["independent-ep"]["verdict"] == "independent"
    messages = {"error-ep": "HTTP 500", "nan-ep": "non-finite", "wrong-shape-ep": "answered shape",
                "slow-ep": "no answer within the timeout", "garbage-ep": "not JSON"}
    for name, message in messages.items():
        row = rows[name]
        assert row["verdict"] == "error", row
        assert message in (row["error"] or row["pairs"][0]["message"]), row
    assert rows["garbage-ep"]["endpoint"]["queries"] == 1  # the scale probe: no JSON, no further queries
    assert {error["path"] for error in document["errors"]} == {f"{server.url}/v2/models/{name[:-3]}"
                                                               for name in messages}
    assert "Bearer" not in result.output and TOKEN.split()[1] not in result.output
    page = (tmp_path / "a.html").read_text()
    # the endpoints' answers are kept for the report (never reused in place of querying)
    assert "weights not available" in page and "residuals on them" in page and "no longer in the cache" not in page


def test_audit_endpoint_budget_is_checked_before_querying(server: KServeServer, files: dict, tmp_path: Path):
    from verifier.api import audit

    before = server.queries["independent"]
    spec = EndpointSpec.parse(server.url, "independent", max_queries=4)
    result = audit([files["fp"]], [], cache=tmp_path, endpoints=[spec])
    (row,) = result.rows
    assert row.verdict == "error" and "needs 6 more queries" in (row.error or "")
    assert row.endpoint is not None and row.endpoint["queries"] == 1 == server.queries["independent"] - before


# -- the protocol and the options, without a server ---------------------------------------------

@pytest.mark.parametrize(("url", "model", "message"), [
    ("ftp://host/v2/models/m", None, "must be http:// or https://"),
    ("file:///etc/passwd", "m", "must be http:// or https://"),
    ("http://user:secret@host", "m", "carries credentials"),
    ("http://host:8080", None, "name the model"),
    ("http://host:http/v2/models/m", None, "invalid port"),
    ("http://host/v2/models/a", "b", "the URL names model 'a' but --model says 'b'"),
])
def test_bad_endpoint_specs(url: str, model: str | None, message: str):
    with pytest.raises(InputError, match=message):
        EndpointSpec.parse(url, model)


def test_endpoint_spec_urls():
    spec = EndpointSpec.parse("https://gateway/api/v2/models/de%20noise/versions/3?key=1")
    assert (spec.model, spec.server) == ("de noise", "https://gateway/api")
    assert EndpointSpec.parse("http://host:8080/", "a/b").url == "http://host:8080/v2/models/a%2Fb"
    assert endpoint.parse_header("Authorization:  Bearer x ") == ("Authorization", "Bearer x")
    with pytest.raises(InputError, match="one line"):
        endpoint.parse_header("X-Token: a\r\nHost: evil")


@pytest.mark.parametrize(("document", "message"), [
    ({"outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [[1.0], [2.0, 3.0]]}]}, "not a list of"),
    ({"outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 3], "data": [1.0, 2.0]}]}, "2 values for shape"),
    ({"outputs": [{"name": "y", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}, "datatype BYTES"),
    ({"outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2]}]}, "no 'data'"),
    ({"outputs": [{"name": "y", "datatype": "FP32", "shape": [-1], "data": [1.0]}]}, "free dimension"),
    ({"outputs": [{"name": "y", "datatype": "FP32", "shape": [2], "data": [1.0, None]}]}, "non-finite"),
    ({"outputs": []}, "0 outputs"),
    ({"error": "boom"}, "no valid 'outputs'"),
])
def test_output_validation(document: dict, message: str):
    with pytest.raises(EndpointError, match=message):
        kserve.output_array(document, None)


def test_hostile_json_is_one_error():
    deep = b"[" * 100_000 + b"]" * 100_000
    for body in (deep, b"\xff\xfe", b"NaN]"):
        with pytest.raises(EndpointError, match="is not JSON"):
            kserve.parse_json(body, "the answer")
    assert np.isnan(kserve.parse_json(b"NaN", "x"))  # Python reads it; output_array then refuses it
