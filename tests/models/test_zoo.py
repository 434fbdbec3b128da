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
BY_ID = {entry["id"]: entry for entry in ENTRIES}


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
    assert entry["psnr"] > 0 and entry["baseline_psnr"] > 0
    if entry["relation"] == "derived":
        assert entry["parent"] == f"{entry['source']}/source"
    elif entry["parent"] is not None:  # an independent model's own compressed copy stays independent
        parent = BY_ID[entry["parent"]]
        assert entry["relation"] == "independent"
        assert (parent["relation"], parent["parent"], parent["source"]) == ("independent", None, entry["source"])


def test_negatives_outnumber_positives():
    relations = [entry["relation"] for entry in ENTRIES]
    assert relations.count("independent") >= relations.count("derived")


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["relation"] == "source"], ids=lambda e: e["source"])
def test_source_beats_doing_nothing(entry: dict):
    """Every owner really restores: its held-out PSNR is above the degraded input's (bicubic upscaling for SR)."""
    assert entry["psnr"] > entry["baseline_psnr"] + 0.2
