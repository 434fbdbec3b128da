"""The machine-readable audit result (`verifier audit --json` / `-o results.json`): schema and writer.

This module is the one place the format is defined.  :data:`JSON_SCHEMA` is its JSON Schema
(draft 2020-12), published as docs/audit-results.schema.json (a test keeps the two equal);
:func:`to_dict` builds a document that satisfies it.  ``schema_version``
grows whenever a field changes meaning or disappears; new optional fields do not bump it,
so readers should ignore keys they do not know.

Top level: ``schema`` ("verifier.audit"), ``schema_version``, ``tool`` (name, version),
``created`` (ISO 8601 UTC), ``settings`` (jobs, threads, cache, engine: local or ray), ``owners`` (one per
fingerprint: name, path, sha256 of the file, sha256 of the owner model, method, FPR,
threshold), ``suspects`` (one per file: path, name, sha256, format, sha256 of the ONNX
verified, the export record, verdict, best-matching owner with its score, threshold and
p-value, seconds, error, for an endpoint ``endpoint`` (URL, model, budget and the queries it was sent),
and ``pairs``: the result against every owner, each with its
``evidence`` (weights and behaviour, each with score, threshold, p-value) and ``decided_by``), ``skipped``
(files in the folders no exporter recognises), ``errors`` (every file or pair that could
not be audited, with its message), ``summary`` (suspects per verdict) and ``gate``
(``fail_on``, the failing suspects and the exit code).
"""

from __future__ import annotations

from verifier._version import __version__
from verifier.auditing.results import AuditResult, AuditRow, PairResult

SCHEMA_NAME = "verifier.audit"
#: 2: the verdict "similar", and each pair's evidence (weights, behaviour) with the kind that decided.
SCHEMA_VERSION = 2

_NUMBER = {"type": ["number", "null"]}
_TEXT = {"type": ["string", "null"]}
_VERDICT = {"enum": ["derived", "similar", "independent", "incomparable", "error"]}
_KIND = {"enum": ["weights", "behaviour", None]}


def _object(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties, "required": required or sorted(properties)}


_EVIDENCE = _object({"kind": {"enum": ["weights", "behaviour"]}, "method": {"type": "string"},
                     "score": {"type": "number"}, "threshold": {"type": "number"}, "p_value": {"type": "number"},
                     "significant": {"type": "boolean"}, "detail": {"type": "string"}})
_PAIR = _object({"owner": {"type": "string"}, "verdict": _VERDICT, "score": _NUMBER, "threshold": _NUMBER,
                 "p_value": _NUMBER, "fpr": _NUMBER, "method": _TEXT, "seconds": {"type": "number"},
                 "cached": {"type": "boolean"}, "message": _TEXT, "decided_by": _KIND,
                 "evidence": {"type": "array", "items": _EVIDENCE}})
_SUSPECT_FIELDS = {
    "path": {"type": "string"}, "name": {"type": "string"}, "sha256": _TEXT, "format": _TEXT, "onnx_sha256": _TEXT,
    "export": {"type": ["object", "null"]}, "export_cached": {"type": "boolean"}, "verdict": _VERDICT,
    "best_owner": _TEXT, "score": _NUMBER, "threshold": _NUMBER, "p_value": _NUMBER, "seconds": {"type": "number"},
    "error": _TEXT, "pairs": {"type": "array", "items": _PAIR}}
#: Only on endpoint rows (``[[endpoints]]``): where it is and what verifying cost it (no header values).
_ENDPOINT = _object({"url": {"type": "string"}, "model": {"type": "string"}, "name": {"type": "string"},
                     "headers": {"type": "array", "items": {"type": "string"}}, "max_queries": {"type": "integer"},
                     "timeout": {"type": "number"}, "queries": {"type": "integer"}, "retries": {"type": "integer"},
                     "requests": {"type": "integer"}},
                    ["url", "model", "name", "headers", "max_queries", "timeout"])
_SUSPECT = _object({**_SUSPECT_FIELDS, "endpoint": _ENDPOINT}, sorted(_SUSPECT_FIELDS))
_OWNER = _object({"name": {"type": "string"}, "path": {"type": "string"}, "sha256": {"type": "string"},
                  "owner_model_sha256": {"type": "string"}, "method": {"type": "string"}, "fpr": {"type": "number"},
                  "threshold": {"type": "number"}, "references": {"type": "integer"}})

#: JSON Schema of the document :func:`to_dict` returns.
JSON_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "verifier audit results",
    **_object({
        "schema": {"const": SCHEMA_NAME},
        "schema_version": {"const": SCHEMA_VERSION},
        "tool": _object({"name": {"const": "verifier"}, "version": {"type": "string"}}),
        "created": {"type": "string"},
        "settings": _object({"jobs": {"type": "integer"}, "threads": {"type": "integer"}, "cache": _TEXT,
                             "seconds": {"type": "number"}, "engine": {"enum": ["local", "ray"]}},
                            ["cache", "jobs", "seconds", "threads"]),
        "owners": {"type": "array", "items": _OWNER},
        "suspects": {"type": "array", "items": _SUSPECT},
        "skipped": {"type": "array", "items": {"type": "string"}},
        "errors": {"type": "array", "items": _object({"path": {"type": "string"}, "owner": _TEXT,
                                                      "message": {"type": "string"}})},
        "summary": _object({outcome: {"type": "integer"} for outcome in _VERDICT["enum"]}),
        "gate": _object({"fail_on": {"type": "array", "items": {"type": "string"}},
                         "failing": {"type": "array", "items": {"type": "string"}},
                         "exit_code": {"enum": [0, 1, 2]}}),
    }),
}


def _pair(pair: PairResult) -> dict:
    record = pair.to_dict()
    del record["evidence_key"]  # where the cache keeps the suspect's evidence: the HTML report's business
    return record


def _suspect(row: AuditRow) -> dict:
    best = row.best
    return {"path": row.path, "name": row.name, "sha256": row.sha256, "format": row.format,
            "onnx_sha256": row.onnx_sha256, "export": row.export, "export_cached": row.export_cached,
            "verdict": row.verdict, "best_owner": best.owner if best else None,
            "score": best.score if best else None, "threshold": best.threshold if best else None,
            "p_value": best.p_value if best else None, "seconds": row.seconds, "error": row.error,
            "pairs": [_pair(pair) for pair in row.pairs], **({"endpoint": row.endpoint} if row.endpoint else {})}


def _errors(result: AuditResult) -> list[dict]:
    errors = []
    for row in result.rows:
        if row.error:
            errors.append({"path": row.path, "owner": None, "message": row.error})
        errors.extend({"path": row.path, "owner": pair.owner, "message": pair.message or ""}
                      for pair in row.pairs if pair.verdict == "error")
    return errors


def to_dict(result: AuditResult, fail_on: tuple[str, ...]) -> dict:
    """The JSON document for `result` under the gate `fail_on`."""
    owners = [{"name": owner.name, "path": str(owner.path), "sha256": owner.sha256,
               "owner_model_sha256": owner.fingerprint.owner["sha256"], "method": owner.fingerprint.settings.method,
               "fpr": owner.fingerprint.calibration.fpr, "threshold": owner.fingerprint.calibration.threshold,
               "references": len(owner.fingerprint.calibration.null_scores)} for owner in result.owners]
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "verifier", "version": __version__},
        "created": result.created,
        "settings": {"jobs": result.jobs, "threads": result.threads, "cache": result.cache,
                     "seconds": result.seconds, "engine": result.engine},
        "owners": owners,
        "suspects": [_suspect(row) for row in result.rows],
        "skipped": list(result.skipped),
        "errors": _errors(result),
        "summary": result.counts(),
        "gate": {"fail_on": list(fail_on), "failing": [row.name for row in result.failing(fail_on)],
                 "exit_code": result.exit_code(fail_on)},
    }
