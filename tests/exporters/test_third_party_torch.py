"""Real PyTorch weight files from ../shared/third_party: detected, exported, checked, and working.

"Working" is measured, not assumed: a denoiser must raise PSNR on a noisy synthetic image
by a wide margin, an SR model must beat nearest-neighbour upscaling, and the SR models added
with their own layouts must beat bicubic upscaling of a photograph downscaled the way SR models
are trained (bicubic, antialiased), so a wrong weight layout is caught.  Whole pickled modules
are refused unless trusted, and then read without their code.  Skipped when torch or the folder
is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from third_party import downscaled, export_checked, noisy, psnr, scene, third_party

from exporters import ExportError, ExportRequest, export
from exporters.torch_exporter import build_module, load_weights

pytestmark = [pytest.mark.slow, pytest.mark.third_party, pytest.mark.frameworks]

torch = pytest.importorskip("torch")
SIZE = 48

# file -> (architecture, checked behaviour: "denoise[sigma]" (default 25), "sr",
# or None when only equivalence is known)
FILES = {
    "SaoYan_DnCNN-PyTorch/DnCNN-S-15_net.pth": ("DnCNN", "denoise15"),
    "SaoYan_DnCNN-PyTorch/DnCNN-S-25_net.pth": ("DnCNN", "denoise"),
    "SaoYan_DnCNN-PyTorch/DnCNN-S-50_net.pth": ("DnCNN", "denoise50"),
    "SaoYan_DnCNN-PyTorch/DnCNN-B_net.pth": ("DnCNN", "denoise"),
    "cszn_KAIR/dncnn_25.pth": ("DnCNN", "denoise"),
    "Nhat-Thanh_ESPCN-Pytorch/ESPCN-x2.pt": ("ESPCN", "sr"),
    "Nhat-Thanh_ESPCN-Pytorch/ESPCN-x3.pt": ("ESPCN", "sr"),
    "Nhat-Thanh_ESPCN-Pytorch/ESPCN-x4.pt": ("ESPCN", "sr"),
    "yjn870_FSRCNN-pytorch/fsrcnn_x2.pth": ("FSRCNN", "sr"),
    "yjn870_FSRCNN-pytorch/fsrcnn_x3.pth": ("FSRCNN", "sr"),
    "yjn870_FSRCNN-pytorch/fsrcnn_x4.pth": ("FSRCNN", "sr"),
    # Trained on YCbCr images: below nearest-neighbour when fed RGB directly, above it through the conversion.
    "Nhat-Thanh_FSRCNN-Pytorch/FSRCNN-x2.pt": ("FSRCNN", "sr"),
    "Nhat-Thanh_FSRCNN-Pytorch/FSRCNN-x3.pt": ("FSRCNN", "sr"),
    "Nhat-Thanh_FSRCNN-Pytorch/FSRCNN-x4.pt": ("FSRCNN", "sr"),
}
PICKLES = ["cszn_DnCNN/model.pth", "twtygqyy_pytorch-vdsr/model_epoch_50.pth",
           "niazwazir_SUB_PIXEL_CNN/model_epoch_599.pth"]

# SR files with their own layouts: file -> (architecture, --arch-kwargs, dB the model must gain over bicubic
# upscaling on the photograph, about half the gain measured on 2026-11-23).  Same-size models (SRCNN, VDSR) get the x3
# bicubic upscaling as input.  Measured gains: IMDN, PAN, CARN-M +1.1 to +1.9 dB, VDSR +1.1, SRCNN +0.3, Nhat-Thanh
# ESPCN / FSRCNN +1.0 (x2) to +0.1 (x4); IMDN_RTE (trained for downsampling + noise) +0.24 and the sub-pixel CNN
# (PyTorch example) +0.15 are too close to bicubic: those must beat nearest-neighbour upscaling instead (None).
SR_FILES = {
    "Zheng222_IMDN/IMDN_x2.pth": ("IMDN", None, 1.0),
    "Zheng222_IMDN/IMDN_x3.pth": ("IMDN", None, 0.8),
    "Zheng222_IMDN/IMDN_x4.pth": ("IMDN", None, 0.6),
    "Zheng222_IMDN/model_RTC.pth": ("IMDNRTC", None, 0.8),
    "Zheng222_IMDN/model_RTE.pth": ("IMDNRTE", None, None),
    "Nhat-Thanh_SRCNN-Pytorch/SRCNN-915.pt": ("SRCNN", None, 0.2),
    "Nhat-Thanh_SRCNN-Pytorch/SRCNN-935.pt": ("SRCNN", None, 0.2),
    "Nhat-Thanh_SRCNN-Pytorch/SRCNN-955.pt": ("SRCNN", None, 0.2),
    "zhaohengyuan1_PAN/PANx2_DF2K.pth": ("PAN", None, 1.0),
    "zhaohengyuan1_PAN/PANx3_DF2K.pth": ("PAN", None, 0.8),
    "zhaohengyuan1_PAN/PANx4_DF2K.pth": ("PAN", None, 0.6),
    "nmhkahn_CARN-pytorch/carn_m.pth": ("CARNM", None, 1.0),
    "nmhkahn_CARN-pytorch/carn_m.pth@3": ("CARNM", {"scale": 3}, 0.8),
    "nmhkahn_CARN-pytorch/carn_m.pth@4": ("CARNM", {"scale": 4}, 0.6),
    "twtygqyy_pytorch-vdsr/model_epoch_50.pth": ("VDSR", None, 0.5),
    "niazwazir_SUB_PIXEL_CNN/model_epoch_599.pth": ("SubPixelCNN", None, None),
    "Nhat-Thanh_FSRCNN-Pytorch/FSRCNN-x2.pt": ("FSRCNN", None, 0.5),
    "Nhat-Thanh_FSRCNN-Pytorch/FSRCNN-x3.pt": ("FSRCNN", None, 0.2),
    "Nhat-Thanh_FSRCNN-Pytorch/FSRCNN-x4.pt": ("FSRCNN", None, None),
    "Nhat-Thanh_ESPCN-Pytorch/ESPCN-x2.pt": ("ESPCN", None, 0.5),
    "Nhat-Thanh_ESPCN-Pytorch/ESPCN-x3.pt": ("ESPCN", None, 0.2),
    "Nhat-Thanh_ESPCN-Pytorch/ESPCN-x4.pt": ("ESPCN", None, None),
}
#: One file per architecture (and layout variant) goes through the whole export; the rest share its code.
SR_EXPORTED = ["Zheng222_IMDN/IMDN_x2.pth", "Zheng222_IMDN/model_RTC.pth", "Zheng222_IMDN/model_RTE.pth",
               "Nhat-Thanh_SRCNN-Pytorch/SRCNN-935.pt", "zhaohengyuan1_PAN/PANx4_DF2K.pth",
               "nmhkahn_CARN-pytorch/carn_m.pth@3", "twtygqyy_pytorch-vdsr/model_epoch_50.pth",
               "niazwazir_SUB_PIXEL_CNN/model_epoch_599.pth"]
PHOTO = 96  # pixels: divisible by 2, 3 and 4


def _photo(channels: int) -> np.ndarray:
    """A detailed 96x96 crop of skimage's astronaut, (1, channels, 96, 96) in [0, 1]; luminance when channels is 1."""
    data = pytest.importorskip("skimage.data")
    rgb = data.astronaut()[40:40 + PHOTO, 160:160 + PHOTO].astype(np.float32) / 255
    image = rgb @ np.array([0.299, 0.587, 0.114], np.float32) if channels == 1 else rgb.transpose(2, 0, 1)
    return image.reshape(1, channels, PHOTO, PHOTO)


def _bicubic(image: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bicubic resize to size x size (how SR training pairs are usually made), clipped to [0, 1]."""
    tensor = torch.nn.functional.interpolate(torch.from_numpy(image), size=(size, size), mode="bicubic",
                                             antialias=True)
    return tensor.clamp(0, 1).numpy()


def _sr_gain(run, channels: int, scale: int, floor: float | None) -> tuple[float, float]:
    """(model's PSNR on the photograph, the baseline's it must beat): bicubic + `floor` dB, or nearest when
    `floor` is None.  `scale` is the model's own (1: same-size, fed the x3 bicubic upscaling)."""
    clean = _photo(channels)
    factor = scale if scale > 1 else 3
    small = _bicubic(clean, PHOTO // factor)
    upscaled = _bicubic(small, PHOTO)
    restored = np.clip(run(small if scale > 1 else upscaled), 0, 1)
    if floor is None:
        baseline = psnr(np.repeat(np.repeat(small, factor, 2), factor, 3), clean)
    else:
        baseline = psnr(upscaled, clean) + floor
    return psnr(restored, clean), baseline


def _split_name(key: str) -> tuple[str, dict | None]:
    """('folder/file', its --arch-kwargs) for a SR_FILES key ('file@3' is the file at another scale)."""
    return key.partition("@")[0], SR_FILES[key][1]



@pytest.mark.parametrize("name", sorted(FILES), ids=[Path(n).stem for n in sorted(FILES)])
def test_third_party_weights_export_and_work(tmp_path: Path, name: str):
    architecture, behaviour = FILES[name]
    result, model = export_checked(name, tmp_path)
    clean = scene(model.io.channels, SIZE)
    if behaviour and behaviour.startswith("denoise"):
        degraded = noisy(clean, int(behaviour.removeprefix("denoise") or 25) / 255)
        assert psnr(np.clip(model.run(degraded), 0, 1), clean) > psnr(degraded, clean) + 8
    elif behaviour == "sr":
        small, nearest = downscaled(clean, model.io.scale)
        assert psnr(np.clip(model.run(small), 0, 1), clean) > psnr(nearest, clean)
    assert f":{architecture}(" in result.architecture


@pytest.mark.parametrize("name", PICKLES, ids=[Path(n).parent.name for n in PICKLES])
def test_third_party_pickles_are_refused(tmp_path: Path, name: str):
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match="pickle that runs code"):
        export(ExportRequest(source=third_party(name), output=out))
    assert not out.exists()


@pytest.mark.parametrize("key", sorted(SR_FILES), ids=[Path(k).name for k in sorted(SR_FILES)])
def test_third_party_sr_layouts_are_detected_and_beat_bicubic(key: str):
    """Every file, in torch (seconds each): the detected architecture and renamed weights do super-resolution."""
    name, kwargs = _split_name(key)
    architecture, _, floor = SR_FILES[key]
    request = ExportRequest(source=third_party(name), output=Path("unused.onnx"), arch_kwargs=kwargs,
                            trust_pickle=True)
    module, description = build_module(torch, load_weights(torch, request.source, True), request)
    assert f":{architecture}(" in description
    channels = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    with torch.no_grad():
        scale = module(torch.zeros(1, channels, 12, 12)).shape[-1] // 12

        def run(x: np.ndarray) -> np.ndarray:
            return module(torch.from_numpy(x)).numpy()

        model_psnr, baseline = _sr_gain(run, channels, scale, floor)
    assert model_psnr > baseline


@pytest.mark.parametrize("key", SR_EXPORTED, ids=[Path(k).name for k in SR_EXPORTED])
def test_third_party_sr_exports_match_and_work(tmp_path: Path, key: str):
    """One file per layout through `export` (trusting the pickles): equivalence check, metadata, ONNX behaviour."""
    name, kwargs = _split_name(key)
    architecture, _, floor = SR_FILES[key]
    result, model = export_checked(name, tmp_path, arch_kwargs=kwargs, trust_pickle=True)
    assert f":{architecture}(" in result.architecture
    model_psnr, baseline = _sr_gain(model.run, model.io.channels, model.io.scale, floor)
    assert model_psnr > baseline


def test_trusted_dncnn_pickle_is_read_without_its_code(tmp_path: Path):
    """cszn's pickled `__main__.DnCNN` (not importable): weights read inertly, detected, and it denoises."""
    result, model = export_checked("cszn_DnCNN/model.pth", tmp_path, trust_pickle=True)
    assert ":DnCNN(" in result.architecture and "last_bias=False" in result.architecture
    clean = scene(1, SIZE)
    degraded = noisy(clean, 25 / 255)
    assert psnr(np.clip(model.run(degraded), 0, 1), clean) > psnr(degraded, clean) + 8


def test_multi_scale_file_defaults_to_x2_and_says_so(tmp_path: Path):
    name = "nmhkahn_CARN-pytorch/carn_m.pth"
    request = ExportRequest(source=third_party(name), output=tmp_path / "m.onnx")
    _, description = build_module(torch, load_weights(torch, request.source, False), request)
    assert "scale=2" in description and "--arch-kwargs" in description


def test_scale_not_in_weights_nor_name_is_asked_for(tmp_path: Path):
    """PAN x2 and x3 files hold identical tensors: renamed, the scale must be given."""
    source = tmp_path / "pan.pth"
    source.write_bytes(third_party("zhaohengyuan1_PAN/PANx2_DF2K.pth").read_bytes())
    with pytest.raises(ExportError, match=r"needs 'scale'.*--arch-kwargs"):
        export(ExportRequest(source=source, output=tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()


def test_imdn_as_exports_as_a_same_size_model(tmp_path: Path):
    """IMDN_AS matches torch and keeps the image size; its behaviour is not asserted: trained on RealSR camera
    pairs, it is 2-8 dB below bicubic on our synthetic bicubic or blur degradations (measured 2026-11-23)."""
    result, model = export_checked("Zheng222_IMDN/IMDN_AS.pth", tmp_path)
    assert "same_size=True" in result.architecture and model.io.scale == 1
    assert model.run(_photo(3)).shape == (1, 3, PHOTO, PHOTO)
