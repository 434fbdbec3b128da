"""Real Keras HDF5 weight files from ../shared/third_party through tf2onnx.

Skipped when tensorflow/tf2onnx or the folder is absent.  Behaviour is measured as in
test_third_party_torch: an SR model must beat nearest-neighbour upscaling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from third_party import downscaled, export_checked, photo, psnr, scene, third_party

from exporters import ExportError, ExportRequest, export

pytestmark = [pytest.mark.slow, pytest.mark.third_party, pytest.mark.frameworks]

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
SIZE = 48

# file -> whether it must beat nearest-neighbour on our synthetic scene (x2 does not: it is
# exported faithfully, equivalence-checked, but scores 29 dB against nearest's 34 dB).
FILES = {
    "Nhat-Thanh_ESPCN-TF/ESPCN-x2.h5": False,
    "Nhat-Thanh_ESPCN-TF/ESPCN-x3.h5": True,
    "Nhat-Thanh_ESPCN-TF/ESPCN-x4.h5": True,
}



@pytest.mark.parametrize("name", sorted(FILES), ids=[Path(n).stem for n in sorted(FILES)])
def test_keras_weights_export(tmp_path: Path, name: str):
    _, model = export_checked(name, tmp_path)
    assert (model.io.layout, model.io.layout_source) == ("NHWC", "metadata")
    if FILES[name]:
        clean = scene(3, SIZE)
        small, nearest = downscaled(clean, model.io.scale)
        assert psnr(np.clip(model.run(small), 0, 1), clean) > psnr(nearest, clean)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fsrcnn_weights_export_and_beat_bicubic(tmp_path: Path, scale: int):
    """Nhat-Thanh's FSRCNN works on YCbCr in [0, 1]; judged on luminance against bicubic upscaling."""
    color = pytest.importorskip("skimage.color")
    ndimage = pytest.importorskip("scipy.ndimage")
    result, model = export_checked(f"Nhat-Thanh_FSRCNN-TF/FSRCNN-x{scale}.h5", tmp_path)
    assert f"FSRCNN x{scale}" in result.architecture and model.io.scale == scale
    clean = (color.rgb2ycbcr(photo(3, 96)[0].transpose(1, 2, 0)) / 255).transpose(2, 0, 1)[None].astype(np.float32)
    small, _ = downscaled(clean, scale)
    bicubic = np.clip(ndimage.zoom(small, (1, 1, scale, scale), order=3), 0, 1)
    assert psnr(model.run(small)[:, 0], clean[:, 0]) > psnr(bicubic[:, 0], clean[:, 0]) + 0.5


def test_fsrcnn_scale_from_arch_kwargs_or_refused(tmp_path: Path):
    """The weights do not record the factor: without 'xN' in the name it must be given."""
    renamed = tmp_path / "fsrcnn.h5"
    renamed.symlink_to(third_party("Nhat-Thanh_FSRCNN-TF/FSRCNN-x3.h5"))
    with pytest.raises(ExportError, match="do not record the upscaling factor"):
        export(ExportRequest(source=renamed, output=tmp_path / "o.onnx"))
    result = export(ExportRequest(source=renamed, output=tmp_path / "o.onnx", arch_kwargs={"scale": 3}, check=False))
    assert "FSRCNN x3" in result.architecture


@pytest.mark.parametrize("middle", [1, 3, 5])
def test_srcnn_weights_export_as_the_pytorch_port_and_beat_bicubic(tmp_path: Path, middle: int):
    """Nhat-Thanh's SRCNN-TF (valid convs on YCbCr) exports to the same function as the PyTorch port of his
    SRCNN given the same weights, so the two frameworks' files can be compared, and it sharpens an x3 bicubic
    upscaling of a photograph (same-size SR: its input is the upscaled image)."""
    torch = pytest.importorskip("torch")
    from exporters.architectures.torch_nets import SRCNN
    from exporters.keras_exporter import read_h5_weights

    name = f"Nhat-Thanh_SRCNN-TF/SRCNN-9{middle}5.h5"
    result, model = export_checked(name, tmp_path)
    assert f"build_srcnn(kernels=(9, {middle}, 5))" in result.architecture and model.io.scale == 1
    port = SRCNN(3, (9, middle, 5), (64, 32), ycbcr=True)
    for conv, layer in zip((port.patch_extraction, port.nonlinear_map, port.recon), read_h5_weights(third_party(name)),
                           strict=True):
        arrays = dict(zip(layer.names, layer.arrays, strict=True))
        conv.weight.data = torch.from_numpy(arrays["kernel"].transpose(3, 2, 0, 1).copy())
        conv.bias.data = torch.from_numpy(arrays["bias"])
    clean = photo(3, 96)
    upscaled = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(torch.from_numpy(clean), 3),
                                               scale_factor=3, mode="bicubic").clamp(0, 1).numpy()
    restored = model.run(upscaled)
    with torch.no_grad():
        assert np.abs(restored - port(torch.from_numpy(upscaled)).numpy()).max() < 1e-4
    assert psnr(restored, clean) > psnr(upscaled, clean) + 0.2


def test_unknown_variant_is_refused_not_guessed(tmp_path: Path):
    """jlfilho's ESPCN has the same shapes but other activations and range: no silent guess."""
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match="does not know"):
        export(ExportRequest(source=third_party("jlfilho_ESPCN-Keras/ESPCN_2X.h5"), output=out))
    assert not out.exists()


@pytest.mark.parametrize("kernels", [
    [(9, 9, 3, 64), (3, 3, 64, 32), (5, 5, 32, 3)],  # SRCNN-935's shapes
    [(5, 5, 3, 64), (3, 3, 64, 32), (3, 3, 32, 27)],  # ESPCN x3's shapes
])
def test_known_layout_with_misfit_bias_is_refused(tmp_path: Path, kernels: list[tuple[int, ...]]):
    """A crafted weights-only file named like a known layout whose first bias does not fit its kernel: one line,
    not an internal error from Keras."""
    h5py = pytest.importorskip("h5py")
    source = tmp_path / "crafted.h5"
    names = ["conv2d", "conv2d_1", "conv2d_2"]
    with h5py.File(source, "w") as handle:
        handle.attrs["layer_names"] = [name.encode() for name in names]
        for index, (name, kernel) in enumerate(zip(names, kernels, strict=True)):
            group = handle.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            group.create_dataset(f"{name}/kernel:0", data=np.zeros(kernel, np.float32))
            group.create_dataset(f"{name}/bias:0", data=np.zeros(7 if index == 0 else kernel[3], np.float32))
    out = tmp_path / "o.onnx"
    with pytest.raises(ExportError, match="does not know"):
        export(ExportRequest(source=source, output=out))
    assert not out.exists()


def test_corrupt_h5(tmp_path: Path):
    source = tmp_path / "broken.h5"
    source.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ExportError, match="cannot read"):
        export(ExportRequest(source=source, output=tmp_path / "o.onnx"))
