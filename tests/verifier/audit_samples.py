"""What the audit tests audit: a vendor folder with one model per exporter, a corrupt file and derived copies.

Third-party files are copied into the test's temporary folder at test time (never into the
repository); the trained tiny denoisers give the derived copies and the owners.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

import verifier
from exporters import EXPORTERS

FOLDER = Path(__file__).resolve().parents[3] / "shared" / "third_party"
#: One file per exporter (exporters.EXPORTERS) and the module its framework needs.
SAMPLES = {
    "onnx": ("2hg7274_onnx_example/super_resolution.onnx", "onnx"),
    "torch": ("SaoYan_DnCNN-PyTorch/DnCNN-S-25_net.pth", "torch"),
    "tensorflow": ("Nhat-Thanh_ESPCN-TF/ESPCN-x2.h5", "tensorflow"),
    "tflite": ("Zheng222_IMDN/imdn_rtc_time.tflite", "tensorflow"),
    "matlab": ("cszn_DnCNN/sigma=25.mat", "h5py"),
    "flax": ("lanl_scico-data/dncnn6M.mpk", "flax"),
    "paddle": ("sldyns_DnCNN_paddle/net.pdparams", "paddle"),
    "savedmodel": ("vinayak19th_ARCNN-keras/Model_20epoch/saved_model.pb", "tensorflow"),  # the folder is the model
    "keras": ("tiny_dncnn.keras", "keras"),  # made by make_vendor_folder: no third-party .keras file exists
}
#: Files made from the trained models: name in the vendor folder -> (trained model, expected verdict, best owner).
DERIVED = {"copy.onnx": ("owner", "derived", "owner"), "finetuned.onnx": ("finetuned", "derived", "owner"),
           "other_copy.onnx": ("independent", "derived", "other")}
CORRUPT = "broken.pth"
#: Fingerprint settings small enough for tests (tiny models, 32x32 critical images).
SETTINGS = {"seeds": 2, "size": 32, "threads": 1}


def sample_name(exporter: str) -> str:
    """The sample's name in the vendor folder (prefixed with its exporter, suffix kept; a SavedModel's folder)."""
    source = Path(SAMPLES[exporter][0])
    return f"{exporter}_{source.parent.name if source.name == 'saved_model.pb' else source.name}"


def _copy_sample(exporter: str, target: Path) -> None:
    source = FOLDER / SAMPLES[exporter][0]
    if exporter == "keras":  # a tiny Keras 3 archive; without Keras an empty file, whose row must say so
        if framework_installed(exporter):
            from exporters.architectures.keras_nets import build_dncnn

            build_dncnn(channels=1, depth=3, width=4).save(target)
        else:
            target.touch()
    elif source.name == "saved_model.pb":
        shutil.copytree(source.parent, target)
    else:
        shutil.copy(source, target)


def framework_installed(exporter: str) -> bool:
    """Whether the sample's framework can be imported (otherwise its row must be an error naming it)."""
    return importlib.util.find_spec(SAMPLES[exporter][1]) is not None


def make_owners(trained: dict[str, Path], folder: Path) -> dict[str, Path]:
    """Fingerprint files of the trained owner and of the independent model (a second owner), via the API."""
    references = [trained[name] for name in ("ref_0", "ref_1", "ref_2")]
    paths = {}
    for owner, model in (("owner", "owner"), ("other", "independent")):
        paths[owner] = folder / f"{owner}.vfp"
        verifier.fingerprint(trained[model], references, output=paths[owner], **SETTINGS)
    return paths


def make_vendor_folder(trained: dict[str, Path], folder: Path) -> Path:
    """The folder to audit; skips when the third-party files are absent."""
    missing = [exporter for exporter in EXPORTERS if exporter not in SAMPLES]
    assert not missing, f"add an audit sample for the new exporter(s) {missing} to SAMPLES"
    if not FOLDER.is_dir():
        pytest.skip(f"{FOLDER} not available")
    folder.mkdir()
    for exporter in EXPORTERS:
        _copy_sample(exporter, folder / sample_name(exporter))
    for name, (model, _, _) in DERIVED.items():
        shutil.copy(trained[model], folder / name)
    (folder / CORRUPT).write_bytes((FOLDER / SAMPLES["torch"][0]).read_bytes()[:4000])  # truncated download
    (folder / "notes").mkdir()
    (folder / "notes" / "README.txt").write_text("not a model: skipped")
    return folder
