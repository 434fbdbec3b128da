"""A short run of the fuzz harness (tests/fuzz.py; README gives the long run): no internal errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fuzz

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_no_internal_errors(target: str):
    findings = fuzz.run([target], count=150, seed=7)[target]
    assert not findings.errors, findings.errors[0]
    assert not findings.hangs, findings.hangs[0]
