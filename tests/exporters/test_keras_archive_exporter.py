""".keras archives written by Keras 3 itself (small models saved here), exported without loading them.

The exported ONNX must reproduce the original Keras model (the one that wrote the file), and layers
that would run code when loaded (Lambda) must be refused by name.  Skipped without tensorflow/tf2onnx.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exporters import ExportError, ExportRequest, export
from verifier import load_model

pytestmark = [pytest.mark.frameworks]

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
keras = pytest.importorskip("keras")


def _residual_denoiser():
    """DnCNN-like: conv-relu, conv-BN-relu, conv, input minus residual."""
    image = keras.Input((None, None, 1), name="noisy")
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    y = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(y)
    y = keras.layers.ReLU()(keras.layers.BatchNormalization(epsilon=1e-4)(y))
    y = keras.layers.Conv2D(1, 3, padding="same", use_bias=False)(y)
    return keras.Model(image, keras.layers.Subtract()([image, y]))


def _upscaler():
    """FSRCNN-like Sequential: conv, PReLU, a stride-2 transposed conv, a stride-1 one (rebuilt as the Conv2D
    it equals, which this compares with Keras's own Conv2DTranspose), clip."""
    return keras.Sequential([
        keras.Input((None, None, 3)),
        keras.layers.Conv2D(6, 3, padding="same"),
        keras.layers.PReLU(shared_axes=[1, 2]),
        keras.layers.Conv2DTranspose(4, 5, strides=2, padding="same"),
        keras.layers.Conv2DTranspose(3, 3, padding="same"),
        keras.layers.ReLU(max_value=1.0)])


def _randomised(model):
    """Non-trivial weights everywhere, BatchNormalization statistics included."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.normal(0, 0.3, w.shape)
                           for w in layer.weights])
    return model


@pytest.mark.parametrize("factory", [_residual_denoiser, _upscaler])
def test_keras_archive_reproduces_the_saved_model(tmp_path: Path, factory):
    model = _randomised(factory())
    model.save(tmp_path / "model.keras")
    result = export(ExportRequest(source=tmp_path / "model.keras", output=tmp_path / "model.onnx"))
    assert result.exporter.startswith("tf2onnx") and result.max_rel_error < 1e-4
    channels = model.inputs[0].shape[-1]
    image = np.random.default_rng(1).random((1, 20, 20, channels), dtype=np.float32)
    original = model.predict(image, verbose=0)
    exported = load_model(tmp_path / "model.onnx").run(image.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    assert np.abs(exported - original).max() <= 1e-4 * np.abs(original).max()


def test_lambda_in_a_keras_archive_is_refused(tmp_path: Path):
    image = keras.Input((None, None, 1))
    keras.Model(image, keras.layers.Lambda(lambda t: t * 2, name="doubling")(image)).save(tmp_path / "m.keras")
    with pytest.raises(ExportError, match="layer 'doubling' is a Lambda"):
        export(ExportRequest(source=tmp_path / "m.keras", output=tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()


def test_not_a_keras_archive(tmp_path: Path):
    (tmp_path / "m.keras").write_bytes(b"PK junk")
    with pytest.raises(ExportError, match=r"cannot read .* as a \.keras archive"):
        export(ExportRequest(source=tmp_path / "m.keras", output=tmp_path / "m.onnx"))
