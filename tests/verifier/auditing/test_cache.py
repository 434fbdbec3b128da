"""The audit cache: a repeated audit answers unchanged files without loading them, and nothing stale or damaged
in the cache is trusted."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from audit_samples import SETTINGS

import verifier
from verifier.auditing.results import AuditResult, PairResult
from verifier.method.evidence import Evidence


@pytest.fixture(scope="module")
def scene(trained_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An owner fingerprint and a vendor folder with a copy of the owner and an independent model."""
    work = tmp_path_factory.mktemp("audit-cache")
    owner = work / "owner.vfp"
    references = [trained_models[name] for name in ("ref_0", "ref_1", "ref_2")]
    verifier.fingerprint(trained_models["owner"], references, output=owner, **SETTINGS)
    vendor = work / "vendor"
    vendor.mkdir()
    for name in ("owner", "independent"):
        (vendor / f"{name}.onnx").write_bytes(trained_models[name].read_bytes())
    return {"owner": owner, "vendor": vendor}


def _audit(scene: dict[str, Path], cache: Path) -> AuditResult:
    return verifier.audit([scene["owner"]], [scene["vendor"]], cache=cache, jobs=1, threads=1)


def _verdicts(result: AuditResult) -> dict[str, tuple]:
    return {row.name: (row.verdict, row.onnx_sha256, tuple((p.verdict, p.score, p.p_value, p.evidence)
                                                            for p in row.pairs)) for row in result.rows}


def test_a_repeated_audit_loads_no_model(scene: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    first = _audit(scene, tmp_path)
    assert {row.name: row.verdict for row in first.rows} == {"owner.onnx": "derived",
                                                              "independent.onnx": "independent"}

    def no_loading(*args, **kwargs):
        raise AssertionError("a cached suspect was loaded")

    monkeypatch.setattr("verifier.graph.model.load_model", no_loading)
    second = _audit(scene, tmp_path)
    assert _verdicts(second) == _verdicts(first)
    assert all(pair.cached for row in second.rows for pair in row.pairs)


def test_a_changed_file_is_judged_again(scene: dict[str, Path], trained_models: dict[str, Path], tmp_path: Path):
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    suspect = vendor / "model.onnx"
    suspect.write_bytes(trained_models["owner"].read_bytes())
    changed = {"owner": scene["owner"], "vendor": vendor}
    assert _audit(changed, tmp_path / "cache").rows[0].verdict == "derived"
    suspect.write_bytes(trained_models["independent"].read_bytes())  # same name, other model
    (row,) = _audit(changed, tmp_path / "cache").rows
    assert row.verdict == "independent" and not row.pairs[0].cached


def test_verdicts_cached_under_other_rules_are_judged_again(scene: dict[str, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    """The version string does not move when a null is remeasured or the weight sketch changes: the cache key
    holds a digest of the code and shipped data that decide, so verdicts cached before such a change miss."""
    from verifier.auditing import cache

    _audit(scene, tmp_path)
    monkeypatch.setattr(cache, "code_digest", lambda: "rules of another build")
    again = _audit(scene, tmp_path)
    assert not any(pair.cached for row in again.rows for pair in row.pairs)


def test_the_code_digest_moves_with_a_null_or_a_source_and_nothing_else(tmp_path: Path):
    import shutil

    from verifier.auditing.cache import code_digest, tree_digest

    installed = Path(verifier.__file__).resolve().parents[1]
    assert code_digest() == tree_digest(installed)
    shutil.copytree(installed / "verifier" / "nulls", tmp_path / "verifier" / "nulls")
    (tmp_path / "exporters").mkdir()
    (tmp_path / "exporters" / "base.py").write_text("x = 1\n")
    before = tree_digest(tmp_path)
    (tmp_path / "exporters" / "notes.txt").write_text("not code")
    (tmp_path / "verifier" / "nulls" / "base.pyc").write_bytes(b"compiled")
    assert tree_digest(tmp_path) == before
    null = tmp_path / "verifier" / "nulls" / "weights.json"
    null.write_text(null.read_text().replace("0.1", "0.2", 1))
    remeasured = tree_digest(tmp_path)
    (tmp_path / "exporters" / "base.py").write_text("x = 2\n")
    assert len({before, remeasured, tree_digest(tmp_path)}) == 3


@pytest.mark.parametrize("damage", ["", "[1, 2]", '{"verdict": "derived"}', "not json"])
def test_a_damaged_verdict_is_judged_again(scene: dict[str, Path], tmp_path: Path, damage: str,
                                          monkeypatch: pytest.MonkeyPatch):
    from verifier.method import verification

    first = _audit(scene, tmp_path)
    records = sorted((tmp_path / "verdicts").glob("*.json"))
    assert len(records) == 2
    for record in records:
        record.write_text(damage)
    judged = []
    real = verification.judge
    monkeypatch.setattr(verification, "judge", lambda *args: judged.append(args) or real(*args))
    second = _audit(scene, tmp_path)
    assert _verdicts(second) == _verdicts(first) and len(judged) == 2
    assert all(json.loads(record.read_text())["verdict"] for record in records)  # written again, whole


def test_a_verdict_record_round_trips():
    pair = PairResult(owner="a", verdict="similar", score=0.5, threshold=0.25, p_value=1e-3, fpr=0.01,
                      method="response", seconds=0.2, evidence_key="k",
                      evidence=(Evidence("weights", "weights", 0.01, 0.2, 0.6, "3 layers"),
                                Evidence("behaviour", "response", 0.5, 0.25, 5e-4)),
                      decided_by="behaviour")
    assert PairResult.from_dict(json.loads(json.dumps(pair.to_dict()))) == pair
    incomparable = PairResult(owner="b", verdict="incomparable", message="needs RGB")
    assert PairResult.from_dict(incomparable.to_dict()) == incomparable


@pytest.mark.parametrize("change", [{"verdict": "copied"}, {"decided_by": "gut"}, {"score": "high"},
                                    {"evidence": [{"kind": "vibes"}]}])
def test_a_forged_verdict_record_is_refused(change: dict):
    record = {**dataclasses.asdict(PairResult(owner="a", verdict="independent")), "evidence": [], **change}
    with pytest.raises((KeyError, TypeError, ValueError)):
        PairResult.from_dict(record)
