"""Reading untrusted ONNX files: every bad file is refused with a ModelFileError naming it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import pytest
from builders import conv_model, save

from verifier.errors import ModelFileError
from verifier.graph.onnx_file import read_onnx, sha256_file


def test_reads_valid_file_and_digest(conv_onnx: Path):
    model, source = read_onnx(conv_onnx)
    assert model.graph.node
    assert source.sha256 == hashlib.sha256(conv_onnx.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.onnx", "not found"),
        (lambda p: p, "not a regular file"),
        (lambda p: ((p / "empty.onnx").write_bytes(b"") and None) or p / "empty.onnx", "empty"),
        (lambda p: (p / "text.onnx").write_text("hello, I am not a model\n" * 10) and p / "text.onnx",
         "not a valid ONNX"),
    ],
)
def test_bad_files(tmp_path: Path, make, message: str):
    with pytest.raises(ModelFileError, match=message):
        read_onnx(make(tmp_path))


def test_truncated_file(conv_onnx: Path):
    data = conv_onnx.read_bytes()
    conv_onnx.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a valid ONNX"):
        read_onnx(conv_onnx)


def _external(tmp_path: Path) -> Path:
    path = tmp_path / "model" / "ext.onnx"
    path.parent.mkdir()
    onnx.save(conv_model(), str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    return path


def test_external_data_inside_folder_loads(tmp_path: Path):
    model, _ = read_onnx(_external(tmp_path))
    assert onnx.numpy_helper.to_array(model.graph.initializer[0]).shape == (3, 3, 3, 3)


def test_digest_covers_external_data(tmp_path: Path):
    """Caches key on the digest: new weights beside an unchanged .onnx file are another model."""
    path = _external(tmp_path)
    _, before = read_onnx(path)
    assert before.sha256 != sha256_file(path)
    weights = path.parent / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[0] ^= 1
    weights.write_bytes(bytes(data))
    _, after = read_onnx(path)
    assert after.sha256 != before.sha256


def test_digest_of_a_self_contained_file_is_the_files(conv_onnx: Path):
    assert read_onnx(conv_onnx)[1].sha256 == sha256_file(conv_onnx)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_outside_folder_is_refused(tmp_path: Path, location: str):
    path = _external(tmp_path)
    (tmp_path / "secret.bin").write_bytes(b"\0" * 1024)
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    save(model, path)
    with pytest.raises(ModelFileError, match="outside the model's folder"):
        read_onnx(path)


def test_external_data_truncated(tmp_path: Path):
    path = _external(tmp_path)
    (path.parent / "weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ModelFileError, match="truncated"):
        read_onnx(path)
