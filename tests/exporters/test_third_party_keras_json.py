"""Keras JSON architecture + HDF5 weights: real files from ../shared/third_party, and small
hand-written pairs for what must be refused (a Lambda layer, weights that do not fit).

Skipped when tensorflow/tf2onnx or the files are absent.  Behaviour: DnCNN (cszn, sigma 25, [0, 1])
must denoise; the SRCNN-style deblurrer (SpoorthyBhat) was trained on raw uint8 pixels, so it is
run in [0, 255] and must sharpen a box-blurred photograph.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from third_party import downscaled, export_checked, jpeg, noisy, photo, psnr, scene

from exporters import ExportError, ExportRequest, export

pytestmark = [pytest.mark.slow, pytest.mark.third_party, pytest.mark.frameworks]

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
h5py = pytest.importorskip("h5py")


def test_dncnn_h5_finds_its_json_and_denoises(tmp_path: Path):
    result, model = export_checked("cszn_DnCNN/model.h5", tmp_path)
    assert "model.json" in result.architecture and "15 BatchNormalization" in result.architecture
    assert (model.io.layout, model.io.channels, model.io.scale) == ("NHWC", 1, 1)
    clean = scene(1, 40)
    degraded = noisy(clean, 25 / 255)
    assert psnr(np.clip(model.run(degraded), 0, 1), clean) > psnr(degraded, clean) + 8


@pytest.mark.parametrize("box", [5, 7])
def test_deblur_json_finds_its_h5_and_sharpens(tmp_path: Path, box: int):
    ndimage = pytest.importorskip("scipy.ndimage")
    _, model = export_checked("SpoorthyBhat_Image_deblurring/model.json", tmp_path)
    clean = photo(3, 96) * 255
    blurred = ndimage.uniform_filter(clean, (1, 1, box, box), mode="nearest")
    restored = np.clip(model.run(blurred), 0, 255)
    inner = (..., slice(8, -8), slice(8, -8))  # the model pads with zeros; judge the interior
    assert psnr(restored[inner] / 255, clean[inner] / 255) > psnr(blurred[inner] / 255, clean[inner] / 255) + 0.5


def test_full_model_h5_with_a_known_lambda_upscales_jpegs(tmp_path: Path):
    """SARCNN_v2 (vinayak19th, jp20): its own model_config, one Lambda whose bytecode is the known
    depth_to_space(x, 2); an x2 model for JPEG-compressed luminance, so it must beat bicubic there."""
    ndimage = pytest.importorskip("scipy.ndimage")
    result, model = export_checked("vinayak19th_ARCNN-keras/jp20_weights-050-0.7765.hdf5", tmp_path)
    assert "model_config" in result.architecture and "1 Lambda" in result.architecture
    assert (model.io.channels, model.io.scale) == (1, 2)
    clean = photo(1, 96)
    compressed = jpeg(downscaled(clean, 2)[0], 10)
    bicubic = np.clip(ndimage.zoom(compressed, (1, 1, 2, 2), order=3), 0, 1)
    assert psnr(np.clip(model.run(compressed), 0, 1), clean) > psnr(bicubic, clean) + 0.3


def _conv(name: str, filters: int, first: bool = False) -> dict:
    config = {"name": name, "filters": filters, "kernel_size": [3, 3], "padding": "same", "activation": "relu",
              "use_bias": True}
    if first:  # Keras 2.2 Sequential: the input shape sits on the first layer
        config["batch_input_shape"] = [None, None, None, 1]
    return {"class_name": "Conv2D", "config": config}


def _write_pair(folder: Path, layers: list[dict], weights: dict[str, list[np.ndarray]]) -> Path:
    """model.json (a Keras 2.2 Sequential) and model.h5 in the `save_weights` layout."""
    (folder / "model.json").write_text(json.dumps({"class_name": "Sequential", "config": layers}))
    with h5py.File(folder / "model.h5", "w") as handle:
        handle.attrs["layer_names"] = [name.encode() for name in weights]
        for name, arrays in weights.items():
            names = [f"{name}/{kind}:0" for kind in ("kernel", "bias")[:len(arrays)]]
            group = handle.create_group(name)
            group.attrs["weight_names"] = [n.encode() for n in names]
            for weight_name, array in zip(names, arrays, strict=True):
                group.create_dataset(weight_name, data=array)
    return folder / "model.json"


def test_small_pair_exports(tmp_path: Path):
    rng = np.random.default_rng(0)
    source = _write_pair(tmp_path, [_conv("a", 4, first=True), _conv("b", 1)],
                         {"a": [rng.normal(size=(3, 3, 1, 4)), rng.normal(size=4)],
                          "b": [rng.normal(size=(3, 3, 4, 1)), rng.normal(size=1)]})
    result = export(ExportRequest(source=source, output=tmp_path / "o.onnx"))
    assert result.max_rel_error is not None and result.max_rel_error < 1e-4


def test_lambda_layer_is_refused_by_name(tmp_path: Path):
    lambda_layer = {"class_name": "Lambda", "config": {"name": "sneaky", "function": ["4wEAAAA=", None, None],
                                                       "function_type": "lambda"}}
    source = _write_pair(tmp_path, [_conv("a", 1, first=True), lambda_layer],
                         {"a": [np.ones((3, 3, 1, 1)), np.zeros(1)]})
    with pytest.raises(ExportError, match="layer 'sneaky' is a Lambda"):
        export(ExportRequest(source=source, output=tmp_path / "o.onnx"))
    assert not (tmp_path / "o.onnx").exists()


def test_weights_that_do_not_fit_name_the_layer_and_both_shapes(tmp_path: Path):
    source = _write_pair(tmp_path, [_conv("a", 4, first=True), _conv("b", 1)],
                         {"a": [np.ones((3, 3, 1, 8)), np.zeros(8)], "b": [np.ones((3, 3, 8, 1)), np.zeros(1)]})
    with pytest.raises(ExportError, match=r"layer 'a' kernel is \[3, 3, 1, 8\] in the file but \[3, 3, 1, 4\]"):
        export(ExportRequest(source=source.with_suffix(".h5"), output=tmp_path / "o.onnx"))
    assert not (tmp_path / "o.onnx").exists()


def test_json_without_weights(tmp_path: Path):
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(ExportError, match="no weights beside it"):
        export(ExportRequest(source=tmp_path / "model.json", output=tmp_path / "o.onnx"))
