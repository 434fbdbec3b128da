"""Real MATLAB v7.3 MatConvNet DnCNN files (cszn/DnCNN) from ../shared/third_party.

Read with h5py, rebuilt in PyTorch, exported; skipped when torch, h5py or the files are absent.
Each must export equivalently and remove most of the noise it was trained for (a wrong
column-major transposition of the kernels would cost that).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from third_party import export_checked, noisy, psnr, scene, third_party

from exporters import ExportError, ExportRequest, export

pytestmark = [pytest.mark.slow, pytest.mark.third_party, pytest.mark.frameworks]

pytest.importorskip("torch")
pytest.importorskip("h5py")
SIZE = 64
# file -> (noise sigma on the 0-255 scale, network depth)
FILES = {"cszn_DnCNN/sigma=15.mat": (15, 17), "cszn_DnCNN/sigma=25.mat": (25, 17),
         "cszn_DnCNN/sigma=50.mat": (50, 17), "cszn_DnCNN/GD_Gray_Blind.mat": (25, 20),
         "cszn_DnCNN/DnCNN3.mat": (25, 20)}



@pytest.mark.parametrize("name", sorted(FILES), ids=[Path(n).stem for n in sorted(FILES)])
def test_matconvnet_dncnn_exports_and_denoises(tmp_path: Path, name: str):
    sigma, depth = FILES[name]
    result, model = export_checked(name, tmp_path)
    assert f"depth={depth}," in result.architecture
    clean = scene(1, SIZE)
    degraded = noisy(clean, sigma / 255)
    assert psnr(np.clip(model.run(degraded), 0, 1), clean) > psnr(degraded, clean) + 8


def test_other_matconvnet_networks_are_refused(tmp_path: Path):
    source = third_party("cszn_FFDNet/FFDNet_gray.mat")
    with pytest.raises(ExportError, match=r"FFDNet_gray\.mat"):
        export(ExportRequest(source=source, output=tmp_path / "ffdnet.onnx"))
    assert not (tmp_path / "ffdnet.onnx").exists()
