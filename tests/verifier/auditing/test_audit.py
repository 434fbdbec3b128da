"""`verifier audit` end to end: every supported format, a corrupt file, derived copies; table, JSON, exit codes."""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

import pytest
from audit_samples import CORRUPT, DERIVED, SETTINGS, framework_installed, sample_name
from click.testing import CliRunner

from exporters import EXPORTERS, recognised
from verifier.auditing.discovery import discover
from verifier.auditing.results import AuditResult, AuditRow, PairResult, check_fail_on
from verifier.auditing.results_json import JSON_SCHEMA, SCHEMA_VERSION
from verifier.cli import main
from verifier.errors import InputError
from verifier.graph.onnx_file import source_digest

_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool,
          "null": type(None)}


def validate(document, schema: dict, where: str = "$") -> None:
    """The subset of JSON Schema that audit_json.JSON_SCHEMA uses (type, const, enum, properties, required, items)."""
    if "type" in schema:
        kinds = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        ok = any(isinstance(document, _TYPES[kind]) and not (kind in ("integer", "number") and
                                                            isinstance(document, bool)) for kind in kinds)
        assert ok, f"{where}: {document!r} is not {kinds}"
    if "const" in schema:
        assert document == schema["const"], where
    if "enum" in schema:
        assert document in schema["enum"], f"{where}: {document!r} not in {schema['enum']}"
    for name in schema.get("required", []):
        assert name in document, f"{where}: missing '{name}'"
    for name, sub in schema.get("properties", {}).items():
        if isinstance(document, dict) and name in document:
            validate(document[name], sub, f"{where}.{name}")
    if "items" in schema and isinstance(document, list):
        for index, item in enumerate(document):
            validate(item, schema["items"], f"{where}[{index}]")


def _rows(stdout: str) -> dict[str, list[str]]:
    """Table rows by suspect name (the first column), split on runs of spaces."""
    import re

    return {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines()[1:-1]}


def test_table_json_and_exit_code(audited):
    results = audited.results
    validate(results, JSON_SCHEMA)
    assert results["schema_version"] == SCHEMA_VERSION and results["settings"]["jobs"] == 2
    suspects = {entry["name"]: entry for entry in results["suspects"]}
    rows = _rows(audited.stdout)
    assert set(rows) == set(suspects) == {*map(sample_name, EXPORTERS), *DERIVED, CORRUPT}
    assert results["skipped"] == [str(audited.folder / "notes" / "README.txt")]
    for entry in suspects.values():  # inputs are identified by their digests
        path = Path(entry["path"])  # a SavedModel is a folder: its digest covers every file in it
        expected = source_digest(path) if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["sha256"] == expected
    for exporter in EXPORTERS:
        name = sample_name(exporter)
        entry, row = suspects[name], rows[name]
        assert entry["format"] == exporter == row[1]
        if framework_installed(exporter):
            assert entry["verdict"] in ("independent", "incomparable"), entry  # third-party: not from our owners
            assert entry["export_cached"] is False and (entry["export"] is None) == (exporter == "onnx")
        else:
            assert entry["verdict"] == "error" and "not installed" in entry["error"]
        assert row[6] == entry["verdict"]
    for name, (_, verdict, owner) in DERIVED.items():
        entry = suspects[name]
        assert (entry["verdict"], entry["best_owner"]) == (verdict, owner)
        assert entry["p_value"] < entry["pairs"][0]["fpr"] and entry["score"] > entry["threshold"]
        best = next(pair for pair in entry["pairs"] if pair["owner"] == owner)
        assert [piece["kind"] for piece in best["evidence"]] == ["weights", "behaviour"]
        assert best["decided_by"] == "weights" and best["evidence"][0]["significant"]
        assert rows[name][2] == owner and rows[name][6] == verdict and rows[name][3] == "weights"
    corrupt = suspects[CORRUPT]
    assert corrupt["verdict"] == "error" and corrupt["error"] and rows[CORRUPT][6] == "error"
    assert {error["path"] for error in results["errors"]} >= {corrupt["path"]}
    assert results["summary"] == {verdict: sum(e["verdict"] == verdict for e in suspects.values())
                                  for verdict in ("derived", "similar", "independent", "incomparable", "error")}
    # the default gate fails on derived models and on errors; an unreadable file makes it exit 2
    assert results["gate"]["fail_on"] == ["derived", "error"]
    assert audited.exit_code == results["gate"]["exit_code"] == 2
    assert audited.stdout.splitlines()[-1].startswith(f"{len(suspects)} suspects against 2 owner(s)")


def test_second_run_reuses_the_cache(audited):
    args = ["audit", "--owner", str(audited.owners["owner"]), "--owner", str(audited.owners["other"]),
            str(audited.folder), "--jobs", "1", "--threads", "1", "--cache", str(audited.cache), "--json",
            "--fail-on", "never"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)  # --json: stdout holds the JSON, the table went to stderr
    first = {entry["name"]: entry for entry in audited.results["suspects"]}
    for entry in again["suspects"]:
        before = first[entry["name"]]
        assert (entry["verdict"], entry["score"], entry["best_owner"]) == (before["verdict"], before["score"],
                                                                            before["best_owner"])
        if entry["format"] not in (None, "onnx") and entry["verdict"] != "error":
            assert entry["export_cached"] is True
        assert all(pair["cached"] for pair in entry["pairs"] if pair["verdict"] in ("derived", "independent"))


@pytest.mark.parametrize(("fail_on", "code"), [
    (("derived",), 1), (("independent",), 1), (("error",), 2), (("never",), 0), (("derived", "error"), 2)])
def test_gate(audited, fail_on: tuple[str, ...], code: int):
    rows = tuple(AuditRow(path=e["path"], name=e["name"], verdict=e["verdict"], seconds=e["seconds"],
                          pairs=tuple(PairResult(owner=p["owner"], verdict=p["verdict"]) for p in e["pairs"]))
                 for e in audited.results["suspects"])
    result = AuditResult(created="", owners=(), rows=rows, skipped=(), jobs=1, threads=1, cache=None, seconds=0)
    assert result.exit_code(check_fail_on(fail_on)) == code


def test_gate_on_a_clean_folder(audited, tmp_path: Path):
    """Only independent models: the default gate passes, `--fail-on independent` (must derive from ours) fails."""
    folder = tmp_path / "clean"
    folder.mkdir()
    (folder / "model.pth").write_bytes((audited.folder / sample_name("torch")).read_bytes())
    base = ["audit", "--owner", str(audited.owners["owner"]), str(folder), "--cache", str(audited.cache)]
    assert CliRunner().invoke(main, base).exit_code == 0
    assert CliRunner().invoke(main, [*base, "--fail-on", "independent"]).exit_code == 1


def test_no_cache_records_no_cache_path(audited, tmp_path: Path):
    """--no-cache uses a temporary folder that is gone when the JSON is read: the JSON must not name it, and the
    HTML report, written while it exists, still shows the suspect's evidence from it."""
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "model.pth").write_bytes((audited.folder / sample_name("torch")).read_bytes())
    report = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["audit", "--owner", str(audited.owners["owner"]), str(folder), "--no-cache",
                                       "--json", "--html", str(report)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["settings"]["cache"] is None
    page = report.read_text()
    assert html.escape("suspect's residuals on them") in page and "no longer in the cache" not in page


def test_discover_skips_unknown_files_and_external_data(tmp_path: Path, conv_onnx: Path):
    import onnx
    from builders import conv_model

    onnx.save(conv_model(), str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.bin",
              size_threshold=0)
    (tmp_path / "weights.pth").write_bytes(b"x")
    (tmp_path / ".hidden.onnx").write_bytes(b"x")
    (tmp_path / "manifest.json").write_text("{}")
    suspects, skipped = discover([tmp_path], recognised)
    assert [name for _, name in suspects] == ["conv.onnx", "ext.onnx", "weights.pth"]  # not ext.bin (weights)
    assert skipped == [str(tmp_path / "manifest.json")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no model files"):
        discover([tmp_path / "empty"], recognised)


@pytest.mark.parametrize(("args", "message"), [
    (["--owner", "{fp}", "{missing}"], "no such suspect file or folder"),
    (["{model}"], "no owner fingerprint given"),
    (["--owner", "{model}", "{model}"], "not a readable fingerprint"),
    (["--owner", "{fp}", "--fail-on", "never", "--fail-on", "derived", "{model}"], "cannot be combined"),
])
def test_audit_that_cannot_run_is_one_line_exit_2(audited, tmp_path: Path, args: list[str], message: str,
                                                 monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # no verifier.toml here
    paths = {"fp": audited.owners["owner"], "missing": tmp_path / "nowhere",
             "model": audited.folder / "copy.onnx"}
    result = CliRunner().invoke(main, ["audit", *(arg.format(**paths) for arg in args)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_paper_method_evidence_is_shared_by_owners_with_the_same_settings(trained_models: dict[str, Path],
                                                                       tmp_path: Path):
    """With ``paper`` the suspect's evidence is its own critical images: computed once, reused for the next owner,
    and shown beside the owner's in the report."""
    import verifier
    from verifier.auditing.report import render
    from verifier.auditing.results import DEFAULT_FAIL_ON

    references = [trained_models[name] for name in ("ref_0", "ref_1", "ref_2")]
    owners = [tmp_path / "a.vfp", tmp_path / "b.vfp"]
    for path, model in zip(owners, ("owner", "independent"), strict=True):
        verifier.fingerprint(trained_models[model], references, output=path, method="paper", **SETTINGS)
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "copy.onnx").write_bytes(trained_models["owner"].read_bytes())
    result = verifier.audit(owners, [tmp_path / "vendor"], cache=tmp_path / "cache", jobs=1)
    ((first, second),) = [row.pairs for row in result.rows]
    assert first.evidence_key == second.evidence_key and (first.cached, second.cached) == (False, True)
    assert (first.verdict, result.rows[0].best.owner) == ("derived", "a")
    page = render(result, DEFAULT_FAIL_ON)
    assert page.count('<img class="critical"') == page.count('<img class="suspect"') == SETTINGS["seeds"]


def test_published_schema_is_current():
    """docs/audit-results.schema.json is what pipelines validate against; it must be JSON_SCHEMA itself."""
    published = Path(__file__).resolve().parents[3] / "docs" / "audit-results.schema.json"
    assert json.loads(published.read_text()) == JSON_SCHEMA, (
        "regenerate: python -c \"import json; from verifier.auditing.results_json import JSON_SCHEMA; "
        "print(json.dumps(JSON_SCHEMA, indent=2))\" > docs/audit-results.schema.json")
