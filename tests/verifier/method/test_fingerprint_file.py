"""The fingerprint file round-trips exactly, and a damaged one is refused with one line."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from builders import chain_weights, conv_chain, conv_model, save

from verifier import load_model
from verifier.errors import InputError, ModelFileError
from verifier.method import fingerprint_file
from verifier.method.degradation import Degradation
from verifier.method.fingerprint import Fingerprint, Settings, create
from verifier.method.inversion import RECIPES
from verifier.method.verification import verify
from verifier.method.weights import WeightSketch

SETTINGS = Settings("response", dataclasses.replace(RECIPES["fast"], evaluations=5, size=16),
                    Degradation("noise", sigma=0.1), (0, 1), threads=1)


@pytest.fixture(scope="module")
def fingerprint(tmp_path_factory: pytest.TempPathFactory) -> Fingerprint:
    folder = tmp_path_factory.mktemp("fp")
    owner = load_model(save(conv_model(seed=0), folder / "owner.onnx"), threads=1)
    references = [load_model(save(conv_model(seed=s), folder / f"ref{s}.onnx"), threads=1) for s in (1, 2, 3)]
    return create(owner, references, SETTINGS)


@pytest.fixture
def saved(fingerprint: Fingerprint, tmp_path: Path) -> Path:
    path = tmp_path / "owner.vfp"
    fingerprint_file.save(fingerprint, path)
    return path


def test_round_trip(fingerprint: Fingerprint, saved: Path):
    loaded = fingerprint_file.load(saved)
    assert loaded.settings == fingerprint.settings and loaded.owner == fingerprint.owner
    assert loaded.calibration == fingerprint.calibration and loaded.cost == fingerprint.cost
    for name in ("critical", "residuals", "references"):
        assert getattr(loaded, name).tobytes() == getattr(fingerprint, name).tobytes()
    with zipfile.ZipFile(saved) as archive:
        names = set(archive.namelist())
    assert {"previews/critical_0.png", "previews/critical_1.png", "fingerprint.json"} <= names
    assert not list(saved.parent.glob(".*.tmp"))


def _rewrite(source: Path, target: Path, edit) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = edit(info.filename, old.read(info.filename))
            if data is not None:
                new.writestr(info.filename, data)
    return target


def _edit_json(change):
    def edit(name: str, data: bytes):
        if name != "fingerprint.json":
            return data
        meta = json.loads(data)
        change(meta)
        return json.dumps(meta)
    return edit


def _edited_seeds(meta: dict) -> None:
    meta["settings"]["seeds"] = [7, 8]


def _newer_schema(meta: dict) -> None:
    meta["schema"] = 99


def _swapped_array(name: str, data: bytes):
    if name == "arrays/critical.npy":
        return data[:-4] + b"\x00\x00\x00\x00"
    return data


@pytest.mark.parametrize(("edit", "message"), [
    (_edit_json(_edited_seeds), "was edited"),
    (_edit_json(_newer_schema), "schema 99 is not supported"),
    (_swapped_array, "does not match its digest"),
    (lambda name, data: None if name == "arrays/references.npy" else data, "lacks 'arrays/references.npy'"),
])
def test_damaged_files_are_refused(saved: Path, tmp_path: Path, edit, message: str):
    with pytest.raises(ModelFileError, match=message):
        fingerprint_file.load(_rewrite(saved, tmp_path / "damaged.vfp", edit))


def test_truncated_and_foreign_files(saved: Path, tmp_path: Path):
    truncated = tmp_path / "truncated.vfp"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="not a readable fingerprint"):
        fingerprint_file.load(truncated)
    with pytest.raises(ModelFileError, match="no such fingerprint"):
        fingerprint_file.load(tmp_path / "missing.vfp")
    foreign = tmp_path / "foreign.vfp"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("fingerprint.json", "[1, 2]")
    with pytest.raises(ModelFileError, match="not a verifier fingerprint"):
        fingerprint_file.load(foreign)


def test_arrays_are_never_unpickled(saved: Path, tmp_path: Path):
    pickled = np.array([{"a": 1}], dtype=object)

    def edit(name: str, data: bytes):
        if name != "arrays/references.npy":
            return data
        buffer = io.BytesIO()
        np.save(buffer, pickled, allow_pickle=True)
        return buffer.getvalue()

    # Digests are recomputed so only the no-pickle rule can stop the load.
    damaged = _rewrite(saved, tmp_path / "pickled.vfp", edit)
    with zipfile.ZipFile(damaged) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    meta = json.loads(members["fingerprint.json"])
    meta["members"] = {name: hashlib.sha256(members[name]).hexdigest() for name in meta["members"]}
    meta["content_sha256"] = fingerprint_file._content_digest(meta)
    members["fingerprint.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(damaged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError, match="malformed fingerprint"):
        fingerprint_file.load(damaged)


def test_too_few_references_fail_before_any_inversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    owner = load_model(save(conv_model(seed=0), tmp_path / "owner.onnx"), threads=1)
    reference = load_model(save(conv_model(seed=1), tmp_path / "ref.onnx"), threads=1)
    monkeypatch.setattr("verifier.method.fingerprint.critical_images", lambda *a, **k: pytest.fail("inverted anyway"))
    with pytest.raises(InputError, match="at least 3 independent reference models, got 1"):
        create(owner, [reference], SETTINGS)


def test_weight_sketch_round_trips(fingerprint: Fingerprint, tmp_path: Path):
    rng = np.random.default_rng(0)
    sketch = WeightSketch((rng.random((8, 45), dtype=np.float32), rng.random((4, 325), dtype=np.float32),
                           rng.random((6, 36), dtype=np.float32)), ((3, 3), (5, 5), (0, 8)))  # (0, 8): linear
    path = tmp_path / "sketched.vfp"
    fingerprint_file.save(dataclasses.replace(fingerprint, weights=sketch), path)
    loaded = fingerprint_file.load(path).weights
    assert loaded.kernels == sketch.kernels
    assert [layer.tobytes() for layer in loaded.layers] == [layer.tobytes() for layer in sketch.layers]


def test_sketch_that_does_not_fit_its_kernel_is_refused(fingerprint: Fingerprint, tmp_path: Path):
    path = tmp_path / "sketched.vfp"
    bad = WeightSketch((np.zeros((8, 44), np.float32),), ((3, 3),))
    fingerprint_file.save(dataclasses.replace(fingerprint, weights=bad), path)
    with pytest.raises(ModelFileError, match="does not match its kernel size"):
        fingerprint_file.load(path)


def test_schema_1_files_still_load_without_weight_evidence(tmp_path: Path):
    """A file written by verifier before weight sketches (commit 1b9dade): conv_model(seed=0), 2 seeds, 16 px."""
    old = fingerprint_file.load(Path(__file__).parents[1] / "data" / "fingerprint_schema1.vfp")
    assert len(old.weights) == 0 and old.settings == SETTINGS
    result = verify(old, load_model(save(conv_model(seed=0), tmp_path / "owner.onnx"), threads=1))
    assert [piece.kind for piece in result.evidence] == ["behaviour"]


def test_schema_2_files_still_load_with_their_weight_evidence(tmp_path: Path):
    """A file written before linear layers were sketched (commit a7a790b): conv_chain(chain_weights(0)) against
    chain_weights(1..3), 2 seeds, 16 px.  Its convolution sketch still proves lineage."""
    old = fingerprint_file.load(Path(__file__).parents[1] / "data" / "fingerprint_schema2.vfp")
    assert old.weights.kernels == ((3, 3),) * 3 and old.settings == SETTINGS
    result = verify(old, load_model(save(conv_chain(chain_weights(0)), tmp_path / "owner.onnx"), threads=1))
    assert result.evidence[0].kind == "weights" and result.verdict == "derived"


def _forge(source: Path, target: Path, change_meta=None, members: dict[str, bytes] | None = None,
           compress: int = zipfile.ZIP_DEFLATED, unlisted: dict[str, bytes] | None = None) -> Path:
    """A forger's file: members replaced or added, metadata changed, and every digest recomputed to match."""
    with zipfile.ZipFile(source) as old:
        content = {name: old.read(name) for name in old.namelist()}
    meta = json.loads(content.pop("fingerprint.json"))
    content.update(members or {})
    if change_meta:
        change_meta(meta)
    meta["members"] = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(content.items())}
    meta["content_sha256"] = fingerprint_file._content_digest(meta)
    with zipfile.ZipFile(target, "w", compress) as archive:
        archive.writestr("fingerprint.json", json.dumps(meta))
        for name, data in {**content, **(unlisted or {})}.items():
            archive.writestr(name, data)
    return target


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(meta: dict) -> None:
        node = meta
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return change


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


BOMB = b"\0" * (64 << 20)  # 64 MiB of zeros: 64 KiB compressed, far above what 2 seeds of 16x16 allow

FORGED = [  # (id, forge keyword arguments, message)
    ("unknown method", {"change_meta": _set("settings", "method", "evil")}, "unknown method"),
    ("negative threads", {"change_meta": _set("settings", "threads", -1)}, "threads must be"),
    ("50 seeds for 2 images", {"change_meta": _set("settings", "seeds", list(range(50)))}, "array 'critical'"),
    ("too many seeds", {"change_meta": _set("settings", "seeds", list(range(500)))}, "seeds must be"),
    ("extra metadata field", {"change_meta": _set("extra", 1)}, "unknown field"),
    ("extra settings field", {"change_meta": _set("settings", "extra", 1)}, "unknown field"),
    ("fpr out of range", {"change_meta": _set("calibration", "fpr", 2.0)}, "fpr must be"),
    ("NaN null score", {"change_meta": _set("calibration", "null_scores", [float("nan")] * 3)}, "null score"),
    ("owner channels missing", {"change_meta": lambda meta: meta["owner"].pop("channels")}, "owner lacks"),
    ("unlisted member", {"unlisted": {"arrays/extra.npy": b"x"}}, "unlisted member"),
    ("member path outside the layout", {"members": {"../evil.npy": b"x"}}, "unexpected member"),
    ("zip bomb", {"members": {"arrays/critical.npy": BOMB}}, "larger than its settings allow"),
    ("bzip2 member", {"compress": zipfile.ZIP_BZIP2}, "unsupported compression"),
    ("wrong array shape", {"members": {"arrays/critical.npy": _npy(np.zeros((2, 3, 8, 8), np.float32))}},
     "expected float32"),
    ("bad npy header", {"members": {"arrays/critical.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4', ("
                                                          + b" " * 5 + b"\n"}}, "fingerprint"),
    ("float64 array", {"members": {"arrays/critical.npy": _npy(np.zeros((2, 3, 8, 8)))}}, "expected float32"),
    ("sketch rows beyond the limit", {"members": {"weights/layer_0.npy": _npy(np.zeros((5000, 45), np.float32))},
                                      "change_meta": _set("weights", {"kernels": [[3, 3]]})}, "larger than"),
    ("linear group out of range", {"members": {"weights/layer_0.npy": _npy(np.zeros((4, 3), np.float32))},
                                   "change_meta": _set("weights", {"kernels": [[0, 2]]})}, "linear group"),
    ("empty sketch layer", {"members": {"weights/layer_0.npy": _npy(np.zeros((0, 45), np.float32))},
                            "change_meta": _set("weights", {"kernels": [[3, 3]]})}, "no rows"),
]


@pytest.mark.parametrize(("forge", "message"), [(case[1], case[2]) for case in FORGED], ids=[c[0] for c in FORGED])
def test_forged_files_are_refused_with_one_line(saved: Path, tmp_path: Path, forge: dict, message: str):
    """Digests only show a file was not changed after it was written; what was written is checked too."""
    forged = _forge(saved, tmp_path / "forged.vfp", **forge)
    with pytest.raises(ModelFileError, match=message) as caught:
        fingerprint_file.load(forged)
    assert "\n" not in str(caught.value)


def test_huge_metadata_member_is_refused_before_it_is_read(tmp_path: Path):
    """A 64 MiB fingerprint.json (64 KiB compressed) is refused from its stated size."""
    path = tmp_path / "huge.vfp"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("fingerprint.json", b" " * (64 << 20))
    with pytest.raises(ModelFileError, match="larger than its settings allow"):
        fingerprint_file.load(path)
