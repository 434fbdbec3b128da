"""The method end to end on models trained in the test session: the verdicts that must hold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from builders import conv_model, save
from trained import fingerprint

from verifier import load_model
from verifier.errors import InputError, UnsupportedModelError
from verifier.method.fingerprint import Fingerprint
from verifier.method.verification import compare, verify
from verifier.method.weights import EMPTY_SKETCH


def _fingerprint(models: dict[str, Path], method: str = "response") -> Fingerprint:
    return fingerprint(models["owner"], models, method)


@pytest.fixture(scope="module")
def owner_fp(trained_models: dict[str, Path]) -> Fingerprint:
    return _fingerprint(trained_models)


@pytest.mark.parametrize(("suspect", "expected"), [
    ("owner", "derived"), ("finetuned", "derived"), ("independent", "independent")])
def test_verdicts(trained_models: dict[str, Path], owner_fp: Fingerprint, suspect: str, expected: str):
    result = verify(owner_fp, load_model(trained_models[suspect]))
    assert result.verdict == expected, result
    assert (result.p_value < result.fpr) == (expected == "derived")
    assert [piece.kind for piece in result.evidence] == ["weights", "behaviour"]
    assert result.decided_by == ("weights" if expected == "derived" else None)
    # each piece is held to half the verdict's rate (Bonferroni), so the verdict keeps the stated FPR; behaviour
    # must also clear the strong-model null, so its threshold is at least the references' own
    behaviour = result.evidence[1]
    assert behaviour.threshold >= owner_fp.calibration.threshold_at(owner_fp.calibration.fpr / 2)
    assert behaviour.p_value >= owner_fp.calibration.p_value(behaviour.score)


@pytest.mark.parametrize(("suspect", "expected"), [("owner", "similar"), ("independent", "independent")])
def test_behaviour_alone_never_says_derived(trained_models: dict[str, Path], owner_fp: Fingerprint, suspect: str,
                                            expected: str):
    """A suspect known only by its outputs (no weights) gets behaviour evidence alone: an exact copy is then
    "similar behaviour, lineage not shown", because strong independent models behave alike too."""
    black_box = dataclasses.replace(load_model(trained_models[suspect]), original=None)
    result = verify(owner_fp, black_box)
    assert [piece.kind for piece in result.evidence] == ["behaviour"]
    assert result.verdict == expected, result
    assert result.evidence[0].threshold >= owner_fp.calibration.threshold


def test_same_fingerprint_twice_is_bitwise_identical(trained_models: dict[str, Path], owner_fp: Fingerprint):
    again = _fingerprint(trained_models)
    assert again.critical.tobytes() == owner_fp.critical.tobytes()
    assert again.residuals.tobytes() == owner_fp.residuals.tobytes()
    assert again.calibration == owner_fp.calibration


def test_paper_method_runs_the_suspect_inversion(trained_models: dict[str, Path]):
    """The paper's baseline decides from the suspect's own critical images; identical models coincide."""
    fp = _fingerprint(trained_models, method="paper")
    assert fp.residuals.size == 0
    assert verify(fp, load_model(trained_models["owner"])).verdict == "derived"
    same = compare(fp, fp)
    assert same.histogram_distance == 0.0 and same.verdict is not None and same.verdict.verdict == "derived"


def test_suspect_with_other_io_is_refused(owner_fp: Fingerprint, tmp_path: Path):
    rgb = load_model(save(conv_model(channels=3), tmp_path / "rgb.onnx"))
    with pytest.raises(InputError, match="channels=3 but the owner model has channels=1"):
        verify(owner_fp, rgb)
    sr = load_model(save(conv_model(channels=1, scale=2), tmp_path / "sr.onnx"))
    with pytest.raises(InputError, match="scale=2"):
        verify(owner_fp, sr)


def test_suspect_producing_nan_is_refused(owner_fp: Fingerprint, tmp_path: Path):
    broken = load_model(save(conv_model(channels=1, extra=("Log",)), tmp_path / "nan.onnx"))  # log of tanh < 0
    with pytest.raises(UnsupportedModelError, match="non-finite"):
        verify(owner_fp, broken)


def test_compare_needs_the_same_settings(trained_models: dict[str, Path], owner_fp: Fingerprint):
    other = dataclasses.replace(owner_fp, settings=dataclasses.replace(owner_fp.settings, seeds=(5, 6, 7)))
    with pytest.raises(InputError, match="different recipes"):
        compare(owner_fp, other)
    result = compare(owner_fp, owner_fp)
    assert np.isclose(result.pixel_correlation, 1.0)
    # response fingerprints carry weight sketches: they decide without any model
    assert result.verdict is not None and result.verdict.verdict == "derived" and result.verdict.decided_by == "weights"
    unsketched = dataclasses.replace(owner_fp, weights=EMPTY_SKETCH)
    assert compare(unsketched, owner_fp).verdict is None


def test_verify_exports_other_formats_first(trained_models: dict[str, Path], owner_fp: Fingerprint):
    """The owner's torch state_dict is exported (as `verifier audit` does) and its weights found: derived."""
    pytest.importorskip("torch")
    from verifier.api import verify as api_verify

    result = api_verify(owner_fp, trained_models["owner_state_dict"])
    assert result.verdict == "derived" and result.decided_by == "weights", result


def test_fixed_size_suspect_is_verified_on_its_canvas(trained_models: dict[str, Path], owner_fp: Fingerprint,
                                                      tmp_path: Path):
    """A copy of the owner exported for one frame size (larger than the probes) is run on that canvas."""
    import onnx

    fixed = onnx.load(str(trained_models["owner"]))
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 1, 48, 40), strict=True):
        dim.dim_value = value
    path = tmp_path / "fixed.onnx"
    onnx.save(fixed, str(path))
    suspect = load_model(path)
    assert (suspect.io.height, suspect.io.width) == (48, 40)
    same = load_model(trained_models["owner"])
    probe = owner_fp.probes.inputs[:1]
    restored, direct = suspect.restore(probe), same.run(probe)
    assert restored.shape == direct.shape
    # away from the right and bottom borders (where the canvas mirrors the probe instead of zero padding it)
    # the convolutions see the same pixels: 4 layers of 3x3 reach 4 pixels
    np.testing.assert_allclose(restored[..., :-4, :-4], direct[..., :-4, :-4], atol=1e-5)
    black_box = dataclasses.replace(suspect, original=None)
    assert verify(owner_fp, black_box).verdict == "similar"
