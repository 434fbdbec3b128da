"""The CLI: `inspect` output, and one-line errors with exit code 2 for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from builders import chain_weights, conv_chain, conv_model, save
from click.testing import CliRunner
from onnx import TensorProto, helper

from verifier.cli import main


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_inspect_text(conv_onnx: Path):
    result = _invoke("inspect", str(conv_onnx))
    assert result.exit_code == 0, result.output
    assert "'img' NCHW (from shape), 3 channel(s)" in result.stdout
    assert "gradient   available at 1x3x64x64" in result.stdout


def test_inspect_json_reports_lowering(tmp_path: Path):
    path = save(conv_model(layout="NHWC", scale=2), tmp_path / "sr.onnx")
    result = _invoke("inspect", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["io"]["layout"] == "NHWC" and report["io"]["scale"] == 2
    assert report["gradient_available"] is True
    assert report["lowered_ops"] == ["DepthToSpace"]
    assert report["op_counts"]["Conv"] == 1


def _no_image_input(tmp_path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["v"], ["out"])], "vec",
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])])
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "vec.onnx")


def _outside_data(tmp_path: Path) -> Path:
    path = tmp_path / "m" / "ext.onnx"
    path.parent.mkdir()
    onnx.save(conv_model(), str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].external_data[0].value = "../../../etc/passwd"
    return save(model, path)


def _truncated(tmp_path: Path) -> Path:
    path = save(conv_model(), tmp_path / "cut.onnx")
    path.write_bytes(path.read_bytes()[:300])
    return path


def _hostile(kind: str):
    """Graphs a hostile or broken exporter could write."""

    def make(tmp_path: Path) -> Path:
        model = conv_model()
        graph = model.graph
        if kind == "cycle":
            graph.node.extend([helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])])
            graph.node[0].input.append("a")  # Conv bias from the cycle
        elif kind == "missing":
            graph.node[0].input[1] = "nowhere"
        elif kind == "raw_data":
            graph.initializer[0].raw_data = graph.initializer[0].raw_data[:10]
        elif kind == "custom_op":
            graph.node.append(helper.make_node("Evil", ["out"], ["evil"], domain="evil.domain"))
            graph.output[0].name = "evil"
            model.opset_import.append(helper.make_opsetid("evil.domain", 1))
        return save(model, tmp_path / f"{kind}.onnx")

    return make


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_hostile("cycle"), "fails ONNX shape inference"),
        (_hostile("missing"), "'nowhere'"),
        (_hostile("raw_data"), "buffer size mismatch"),
        (_hostile("custom_op"), "evil.domain:Evil"),
        (lambda p: p / "missing.onnx", "model file not found"),
        (lambda p: (p / "notes.onnx").write_text("not a model") and p / "notes.onnx", "not a valid ONNX"),
        (_truncated, "not a valid ONNX"),
        (_outside_data, "outside the model's folder"),
        (_no_image_input, "one 4-D image input"),
        (lambda p: save(conv_model(extra=("Atan",)), p / "atan.onnx"), "no gradient for Atan"),
        (lambda p: save(conv_model(opset=99), p / "opset99.onnx"), "opset 99, newer than any"),
        (lambda p: save(conv_model(extra=("Log",)), p / "nan.onnx"), "non-finite values"),
        (lambda p: save(conv_model(dims=("N", None, 20000, 20000)), p / "huge.onnx"), "at most 16777216 pixels"),
        (lambda p: save(conv_model(dims=("N", 100000, "H", "W")), p / "channels.onnx"), "100000 channels"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, make, message: str):
    result = _invoke("inspect", str(make(tmp_path)))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verifier: error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output and ".cc:" not in lines[0] and ".h:" not in lines[0]


def test_bad_range_option(conv_onnx: Path):
    result = _invoke("inspect", str(conv_onnx), "--range", "5,1")
    assert result.exit_code == 2
    assert "lo < hi" in result.stderr


def test_native_logs_do_not_leak(tmp_path: Path):
    """onnxruntime logs straight to fd 2; the process's whole stderr must still be one line."""
    path = _hostile("raw_data")(tmp_path)
    done = subprocess.run([sys.executable, "-m", "verifier", "inspect", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.fixture(scope="module")
def fingerprinted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """RGB conv chains saved to disk and the owner's fingerprint made through the CLI."""
    folder = tmp_path_factory.mktemp("cli_fp")
    paths = {name: save(conv_chain(chain_weights(seed, channels=3, depth=3, width=8)), folder / f"{name}.onnx")
             for name, seed in (("owner", 0), ("ref1", 1), ("ref2", 2), ("ref3", 3), ("other", 4))}
    refs = folder / "refs"
    refs.mkdir()
    for name in ("ref1", "ref2", "ref3"):
        paths[name].rename(refs / f"{name}.onnx")
    paths["refs"] = refs
    paths["fp"] = folder / "owner.vfp"
    result = _invoke("fingerprint", str(paths["owner"]), "-o", str(paths["fp"]), "--reference", str(refs),
                     "--seeds", "2", "--size", "16", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "2 critical images (fast recipe" in result.stdout
    return paths


def test_verify_exit_codes_and_json(fingerprinted: dict[str, Path]):
    fp = str(fingerprinted["fp"])
    derived = CliRunner().invoke(main, ["verify", fp, str(fingerprinted["owner"]), "--json"])
    assert derived.exit_code == 0, derived.output
    report = json.loads(derived.stdout)  # stdout holds the JSON object and nothing else
    assert report["verdict"] == "derived" and report["score"] > report["threshold"]
    assert report["decided_by"] == "weights" and [e["kind"] for e in report["evidence"]] == ["weights", "behaviour"]
    assert report["inputs"]["suspect"]["sha256"] == report["inputs"]["fingerprint"]["owner_sha256"]
    assert {"tool", "p_value", "fpr", "method", "seconds", "meaning"} <= set(report)
    independent = _invoke("verify", fp, str(fingerprinted["other"]))
    assert independent.exit_code == 1, independent.output
    lines = independent.stdout.splitlines()
    assert lines[0].startswith("independent (no evidence of derivation): p-value")
    assert lines[1].split()[0] == "weights" and lines[2].split()[0] == "behaviour"


def test_verify_behaviour_alone_is_similar_exit_3(tmp_path: Path):
    """An owner whose convolutions give no weight sketch (one layer, 3 inputs): behaviour alone decides, and an
    exact copy is "similar", exit 3, never derived."""
    owner = save(conv_model(seed=0), tmp_path / "owner.onnx")
    refs = [str(save(conv_model(seed=seed), tmp_path / f"ref{seed}.onnx")) for seed in (1, 2, 3)]
    fp = tmp_path / "owner.vfp"
    made = _invoke("fingerprint", str(owner), "-o", str(fp), *[arg for ref in refs for arg in ("--reference", ref)],
                   "--seeds", "2", "--size", "16", "--threads", "1")
    assert made.exit_code == 0 and "weight evidence unavailable" in made.stdout, made.output
    copy = _invoke("verify", str(fp), str(owner))
    assert copy.exit_code == 3, copy.output
    assert copy.stdout.startswith("similar (similar behaviour, lineage not shown)")


@pytest.mark.parametrize(("args", "message"), [
    ((), "give either SUSPECT or --endpoint URL"),
    (("SUSPECT", "--endpoint", "http://127.0.0.1:9"), "give either SUSPECT or --endpoint URL, not both"),
    (("SUSPECT", "--model", "m"), "--model, --header, --max-queries and --timeout go with --endpoint"),
    (("--endpoint", "ftp://host/v2/models/m"), "endpoint URL must be http:// or https://"),
    (("--endpoint", "http://host"), "name the model: --model NAME"),
    (("--endpoint", "http://host", "--model", "m", "--header", "no colon"), "--header must be 'Name: value'"),
])
def test_verify_endpoint_options_are_one_line(fingerprinted: dict[str, Path], args: tuple[str, ...], message: str):
    """Exactly one of SUSPECT and --endpoint; the endpoint's options are checked before any request is sent."""
    args = tuple(str(fingerprinted["owner"]) if arg == "SUSPECT" else arg for arg in args)
    result = _invoke("verify", str(fingerprinted["fp"]), *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"verifier: error: {message}" or (
        len(result.stderr.strip().splitlines()) == 1 and message in result.stderr), result.stderr


def test_compare(fingerprinted: dict[str, Path]):
    result = _invoke("compare", str(fingerprinted["fp"]), str(fingerprinted["fp"]), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["histogram_distance"] == 0.0


def test_verify_errors_are_one_line(fingerprinted: dict[str, Path], tmp_path: Path):
    corrupt = tmp_path / "corrupt.vfp"
    corrupt.write_bytes(fingerprinted["fp"].read_bytes()[:100])
    gray = save(conv_model(channels=1), tmp_path / "gray.onnx")
    for args, message in (((str(corrupt), str(fingerprinted["owner"])), "not a readable fingerprint"),
                          ((str(fingerprinted["fp"]), str(gray)), "channels=1 but the owner model has channels=3"),
                          ((str(fingerprinted["fp"]), str(tmp_path / "none.onnx")), "none.onnx")):
        result = _invoke("verify", *args)
        assert result.exit_code == 2, result.output
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_fingerprint_without_references_names_the_task(tmp_path: Path):
    gray_sr = save(conv_model(channels=1, scale=8), tmp_path / "sr.onnx")  # no bundled x8 references
    result = _invoke("fingerprint", str(gray_sr), "-o", str(tmp_path / "sr.vfp"))
    assert result.exit_code == 2
    assert "no bundled reference models for task 'downsample-c1-x8'" in result.stderr
    assert not (tmp_path / "sr.vfp").exists()


def test_x3_model_fingerprints_with_the_default_size(tmp_path: Path):
    """The default critical-image size (128) is rounded down to a multiple of the scale."""
    owner = save(conv_model(channels=1, scale=3, seed=0), tmp_path / "owner.onnx")
    refs = [arg for seed in (1, 2, 3) for arg in ("--reference",
                                                   str(save(conv_model(channels=1, scale=3, seed=seed),
                                                            tmp_path / f"ref{seed}.onnx")))]
    result = _invoke("fingerprint", str(owner), "-o", str(tmp_path / "x3.vfp"), *refs, "--seeds", "1",
                     "--threads", "1")
    assert result.exit_code == 0, result.output
    from verifier.method import fingerprint_file

    assert fingerprint_file.load(tmp_path / "x3.vfp").settings.recipe.size == 126


def test_fixed_size_owner_is_fingerprinted_on_its_canvas(tmp_path: Path):
    owner = save(conv_model(channels=1, dims=("N", None, 24, 24), seed=0), tmp_path / "fixed.onnx")
    refs = [arg for seed in (1, 2, 3) for arg in ("--reference", str(save(conv_model(channels=1, seed=seed),
                                                                             tmp_path / f"ref{seed}.onnx")))]
    made = _invoke("fingerprint", str(owner), "-o", str(tmp_path / "fixed.vfp"), *refs, "--seeds", "1",
                   "--threads", "1")
    assert made.exit_code == 0, made.output
    from verifier.method import fingerprint_file

    assert fingerprint_file.load(tmp_path / "fixed.vfp").settings.recipe.size == 24
    # a non-square canvas (IMDN-RTC's 720x480): critical images at the recipe's size, probes on the canvas
    wide = save(conv_model(channels=1, dims=("N", None, 40, 48), seed=0), tmp_path / "wide.onnx")
    made = _invoke("fingerprint", str(wide), "-o", str(tmp_path / "wide.vfp"), *refs, "--seeds", "1",
                   "--size", "32", "--threads", "1")
    assert made.exit_code == 0, made.output
    assert _invoke("verify", str(tmp_path / "wide.vfp"), str(wide)).exit_code == 3  # no sketch: behaviour only


def test_cli_start_up_does_not_import_scipy_or_onnxruntime():
    """`verifier --help` and argument errors must be instant: scipy.stats alone took 0.6 s to import."""
    code = "import sys, verifier.cli; print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'onnxruntime'}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_help_lists_whole_command_summaries_and_every_exporter():
    from exporters import EXPORTERS

    listing = CliRunner().invoke(main, ["--help"]).output.split("Commands:")[1]
    assert "..." not in listing and "Audit folders of suspects against owner fingerprints." in listing
    export_help = " ".join(CliRunner().invoke(main, ["export", "--help"]).output.split())
    assert all(name in export_help for name in EXPORTERS) and "Example" in export_help
