"""`import verifier` (and its CLI) must not pull in any deep-learning framework, nor Ray."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "flax", "paddle", "exporters", "ray")  # ray: the audit engine


def test_verifier_imports_no_framework():
    code = ("import sys, verifier, verifier.cli, verifier.graph.inspection; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FRAMEWORKS!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
