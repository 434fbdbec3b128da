"""A real TFLite file from ../shared/third_party (IMDN-RTC x2, fixed 720x480 input) through tf2onnx.

Skipped when tensorflow/tf2onnx or the file is absent.  The export must match the TFLite
interpreter (checked by the exporter itself), record NHWC, and load in verifier as an x2 model.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from third_party import third_party

from exporters import ExportError, ExportRequest, export
from verifier import load_model

pytestmark = [pytest.mark.slow, pytest.mark.third_party, pytest.mark.frameworks]

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")


def test_tflite_export(tmp_path: Path):
    out = tmp_path / "imdn.onnx"
    result = export(ExportRequest(source=third_party("Zheng222_IMDN/imdn_rtc_time.tflite"), output=out))
    assert result.exporter == "tf2onnx.convert.from_tflite" and result.layout == "NHWC"
    assert result.max_rel_error is not None and result.max_rel_error < 1e-4
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert metadata["verifier.input_layout"] == "NHWC"
    model = load_model(out)
    assert (model.io.layout, model.io.channels, model.io.scale) == ("NHWC", 3, 2)
    assert (model.io.height, model.io.width) == (720, 480)


def test_corrupt_tflite_is_one_error(tmp_path: Path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(ExportError, match="cannot convert"):
        export(ExportRequest(source=bad, output=tmp_path / "bad.onnx"))
    assert not (tmp_path / "bad.onnx").exists()
