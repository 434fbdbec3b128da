"""The committed model zoo: every manifest entry's file exists, matches its sha256 and loads; lineage is consistent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from verifier import load_model

ZOO = Path(__file__).parents[2] / "models" / "zoo"
MANIFEST = ZOO / "manifest.json"
ENTRIES = json.loads(MANIFEST.read_text())["models"] if MANIFEST.exists() else []
IDS = {entry["id"] for entry in ENTRIES}


def test_manifest_exists():
    assert ENTRIES, f"{MANIFEST} is missing or empty: run python -m models.build"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_entry(entry: dict):
    path = ZOO / entry["file"]
    assert path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    model = load_model(path)
    assert (model.io.channels, model.io.scale) == (entry["task"]["channels"], entry["task"]["scale"])
    assert entry["relation"] in ("source", "derived", "independent", "reference")
    if entry["relation"] == "derived":
        assert entry["parent"] in IDS
        assert entry["parent"] == f"{entry['source']}/source"
    else:
        assert entry["parent"] is None
