"""models.build's table of sources (the README's)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from models.build import SOURCES, sources_table

pytestmark = [pytest.mark.frameworks]


def test_sources_table_rows():
    entries = {f"{SOURCES[0].id}/source": {"psnr": 30.0, "baseline_psnr": 20.5}}
    rows = sources_table(entries).splitlines()[2:]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == [source.id for source in SOURCES]
    assert rows[0].endswith("| 30.00 | 20.50 | +9.50 |")
    assert rows[1].endswith("| - | - | - |")  # not built yet
