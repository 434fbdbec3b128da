"""The benchmark's statistics: AUC and TPR at a fixed FPR on hand-made scores."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")  # models.benchmark imports the zoo builder

from models.benchmark import auc, degradation_for, negative_family, role, tpr_at_fpr


def test_auc():
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([1, 3], [2, 2]) == 0.5
    assert auc([2], [2]) == 0.5
    assert math.isnan(auc([], [1]))


def test_tpr_at_fpr():
    negatives = list(range(100))  # 0..99: at 1% FPR one negative (99) may pass, so the threshold is 98
    assert tpr_at_fpr([98.5, 99.5, 50], negatives) == pytest.approx(2 / 3)
    assert tpr_at_fpr([200], [1, 2, 3]) == 1.0  # fewer than 100 negatives: none may pass
    assert tpr_at_fpr([2.5], [1, 2, 3]) == 0.0


def test_degradation_for_zoo_tasks():
    assert degradation_for({"kind": "downsample", "scale": 4, "sigma": 0.0}).scale == 4
    assert degradation_for({"kind": "noise", "scale": 1, "sigma": 0.1}).sigma == 0.1


def test_merge_and_summarise():
    from models.benchmark import _merge, summarise

    def part(scores: list[tuple[bool, float]], seconds: float) -> dict:
        rows = [{"setting": "s", "positive": p, "family": "prune" if p else "independent (other architecture)",
                 "z": z, "derived": z > 2} for p, z in scores]
        return {"rows": rows, "timings": {"s": {"fingerprint": [seconds], "verify": [0.1]}}}

    merged = _merge([part([(True, 5.0), (False, 0.0)], 10.0), part([(True, 1.0), (False, 3.0)], 20.0)])
    lines = {line["family"]: line for line in summarise(merged)}
    assert lines["all"]["positives"] == 2 and lines["all"]["negatives"] == 2
    assert lines["all"]["auc"] == 0.75
    assert lines["all"]["calibrated_fpr"] == 0.5 and lines["all"]["calibrated_tpr"] == 0.5
    assert lines["all"]["seconds_per_fingerprint"] == 15.0


def _entry(entry_id: str, relation: str, parent: str | None = None, scale: int = 1, arch: str = "DnCNN") -> dict:
    return {"id": entry_id, "source": entry_id.split("/")[0], "relation": relation, "parent": parent,
            "task": {"channels": 3, "scale": scale}, "architecture": arch}


def test_role_of_each_zoo_model_for_an_owner():
    owner = _entry("a/source", "source")
    calibration = {"a/indep_seed"}
    assert role(_entry("a/prune_5", "derived", "a/source"), owner, calibration) is True
    assert role(_entry("a/indep_data", "independent"), owner, calibration) is False
    assert role(_entry("a/indep_data_quantize_int8", "independent", "a/indep_data"), owner, calibration) is False
    assert role(_entry("b/prune_5", "derived", "b/source"), owner, calibration) is False  # another owner's family
    assert role(_entry("b/source", "source"), owner, calibration) is False
    assert role(owner, owner, calibration) is None
    assert role(_entry("a/indep_seed", "independent"), owner, calibration) is None  # calibrates the owner
    assert role(_entry("a/indep_seed_quantize_int8", "independent", "a/indep_seed"), owner, calibration) is None
    assert role(_entry("c/source", "source", scale=2), owner, calibration) is None  # other I/O


def test_negative_family():
    owner = _entry("a/source", "source")
    assert negative_family(_entry("a/indep_seed", "independent"), owner) == "independent (same architecture)"
    assert negative_family(_entry("a/indep_arch_quantize_int8", "independent", "a/indep_arch", arch="UNet"),
                           owner) == "independent (other architecture, compressed/rewritten by its vendor)"
    other = negative_family(_entry("b/prune_5", "derived", "b/source"), owner)
    assert other == "another source's model or its derivative"
