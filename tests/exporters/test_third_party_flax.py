"""Real Flax msgpack checkpoints (lanl/scico-data DnCNNs) from ../shared/third_party.

Read with flax.serialization (msgpack, no pickle), rebuilt in PyTorch (circular padding, BN),
exported; skipped when flax, torch or the files are absent.  Each must export equivalently,
keep its input gradient, and denoise at the noise level it was trained for (a wrong kernel
layout or padding would not).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from third_party import export_checked, noisy, psnr, scene

from exporters import ExportError, ExportRequest, export

pytestmark = [pytest.mark.slow, pytest.mark.third_party, pytest.mark.frameworks]

pytest.importorskip("flax")
pytest.importorskip("torch")
SIZE = 64
# file -> (noise sigma in [0, 1] units, depth); scico trained L/M/H at sigma 0.06/0.10/0.20
FILES = {"lanl_scico-data/dncnn6M.mpk": (0.10, 6), "lanl_scico-data/dncnn17L.mpk": (0.06, 17),
         "lanl_scico-data/dncnn17M.mpk": (0.10, 17), "lanl_scico-data/dncnn17H.mpk": (0.20, 17)}


@pytest.mark.parametrize("name", sorted(FILES), ids=[Path(n).stem for n in sorted(FILES)])
def test_scico_dncnn_exports_and_denoises(tmp_path: Path, name: str):
    sigma, depth = FILES[name]
    result, model = export_checked(name, tmp_path)
    assert f"depth={depth}," in result.architecture
    assert model.gradient_blockers((1, 1, 16, 16)) == []
    clean = scene(1, SIZE)
    degraded = noisy(clean, sigma)
    assert psnr(np.clip(model.run(degraded), 0, 1), clean) > psnr(degraded, clean) + 6


def test_corrupt_msgpack_is_one_error(tmp_path: Path):
    bad = tmp_path / "bad.mpk"
    bad.write_bytes(b"\xc1" * 64)
    with pytest.raises(ExportError, match=r"bad\.mpk"):
        export(ExportRequest(source=bad, output=tmp_path / "bad.onnx"))
    assert not (tmp_path / "bad.onnx").exists()
