"""Real Keras SavedModels (vinayak19th/ARCNN-keras: ARCNN and its dilated variant, TF 2.1-2.3) through
the SavedModel exporter, which never loads the SavedModel itself.

Skipped when tensorflow/tf2onnx or the folders are absent.  Beyond the exporter's own check against the
rebuilt Keras model, the ONNX output is compared here with the SavedModel's own serving signature run by
TensorFlow (the TF1 loader restores these files, unlike `tf.saved_model.load`; fine for trusted test
data, never done by the exporter).  ARCNN works on luminance in [0, 1] and must reduce JPEG artefacts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from third_party import export_checked, jpeg, photo, psnr, third_party

from exporters import ExportError, ExportRequest, detect, export

pytestmark = [pytest.mark.slow, pytest.mark.third_party, pytest.mark.frameworks]

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
FOLDER = "vinayak19th_ARCNN-keras"
# folder -> least PSNR gain (dB) on a quality-10 JPEG: the dilated model, trained for SSIM, gains less.
MODELS = {"Model_50epoch": 1.0, "Model_20epoch": 1.0, "Model2_dialted_epoch": 0.3}


def _serving_output(folder: Path, image: np.ndarray) -> np.ndarray:
    """The SavedModel's serving signature run by TensorFlow on an NHWC image."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        signature = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(folder)).signature_def
        (source,), (sink,) = signature["serving_default"].inputs.values(), signature["serving_default"].outputs.values()
        return session.run(sink.name, {source.name: image})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_savedmodel_export_matches_tensorflow_and_removes_artefacts(tmp_path: Path, name: str):
    result, model = export_checked(f"{FOLDER}/{name}", tmp_path)
    assert result.framework == "tensorflow" and "saved_model.pb" in result.architecture
    assert (model.io.layout, model.io.channels, model.io.scale) == ("NHWC", 1, 1)
    probe = np.random.default_rng(1).random((1, 40, 40, 1), dtype=np.float32)
    native = _serving_output(third_party(f"{FOLDER}/{name}"), probe)
    exported = model.run(probe.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    assert np.abs(exported - native).max() <= 1e-4 * np.abs(native).max()
    clean = photo(1, 96)
    compressed = jpeg(clean, 10)
    assert psnr(np.clip(model.run(compressed), 0, 1), clean) > psnr(compressed, clean) + MODELS[name]


def test_saved_model_pb_names_its_folder(tmp_path: Path):
    """Either may be named; the recorded digest covers the whole folder (variables included) both ways."""
    source = third_party(f"{FOLDER}/Model_50epoch/saved_model.pb")
    assert detect(source).name == detect(source.parent).name == "savedmodel"
    digests = {export(ExportRequest(source=path, output=tmp_path / "o.onnx", check=False)).source_sha256
               for path in (source, source.parent)}
    assert len(digests) == 1


def test_corrupt_saved_model(tmp_path: Path):
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"\xff" * 32)
    with pytest.raises(ExportError, match=r"cannot read .* as a SavedModel"):
        export(ExportRequest(source=tmp_path / "sm", output=tmp_path / "o.onnx"))
    assert not (tmp_path / "o.onnx").exists()


def test_plain_tf_module_is_refused(tmp_path: Path):
    module = tf.Module()
    module.scale = tf.Variable(2.0)
    tf.saved_model.save(module, str(tmp_path / "sm"))
    with pytest.raises(ExportError, match="no Keras model config"):
        export(ExportRequest(source=tmp_path / "sm", output=tmp_path / "o.onnx"))
