"""Real Keras HDF5 weight files from ../shared/third_party through tf2onnx.

Skipped when tensorflow/tf2onnx or the folder is absent.  Behaviour is measured as in
test_third_party_torch: an SR model must beat nearest-neighbour upscaling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from third_party import downscaled, export_checked, psnr, scene, third_party

from exporters import ExportError, ExportRequest, export

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


def test_unknown_variant_is_refused_not_guessed(tmp_path: Path):
    """jlfilho's ESPCN has the same shapes but other activations and range: no silent guess."""
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match="does not know"):
        export(ExportRequest(source=third_party("jlfilho_ESPCN-Keras/ESPCN_2X.h5"), output=out))
    assert not out.exists()


def test_corrupt_h5(tmp_path: Path):
    source = tmp_path / "broken.h5"
    source.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ExportError, match="cannot read"):
        export(ExportRequest(source=source, output=tmp_path / "o.onnx"))
