"""The HTML audit report, rendered by headless Chromium: it must show what the audit found.

Skipped when no Chromium binary is installed (`apt-get install chromium`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
#: Appended to a copy of the report: once everything has loaded, it writes what the page shows into the DOM.
_PROBE = """<script>
window.addEventListener("load", () => {
  const x = (section, cls) => { const line = section.querySelector("svg.score-scale line." + cls);
                                return line ? parseFloat(line.getAttribute("x1")) : null; };
  const sections = [...document.querySelectorAll("section.suspect")].map(s => ({
    name: s.querySelector("h2").firstChild.textContent.trim(),
    verdict: s.dataset.verdict,
    badge: s.querySelector("h2 .verdict").textContent,
    critical: s.querySelectorAll("img.critical").length,
    suspect: s.querySelectorAll("img.suspect").length,
    histogram: s.querySelectorAll("svg.histogram polyline").length,
    score_x: x(s, "score"), threshold_x: x(s, "threshold"),
    message: (s.querySelector("p.message") || {}).textContent || null,
    visible: s.getBoundingClientRect().height > 0}));
  const images = [...document.images];
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({sections, images: images.length,
    decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    gate: document.querySelector(".gate").textContent});
  document.body.appendChild(out);
});
</script>"""


def _chromium(*args: str) -> str:
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=10000", *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def shown(audited, tmp_path_factory: pytest.TempPathFactory) -> dict:
    if CHROMIUM is None:
        pytest.skip("no chromium binary")
    page = tmp_path_factory.mktemp("html") / "probed.html"
    page.write_text(audited.html.read_text().replace("</body>", _PROBE + "</body>"))
    dom = _chromium("--dump-dom", page.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                      .replace("&gt;", ">"))


def test_every_suspect_has_its_section_and_verdict(audited, shown: dict):
    suspects = audited.results["suspects"]
    assert [s["name"] for s in shown["sections"]] == [entry["name"] for entry in suspects]
    for section, entry in zip(shown["sections"], suspects, strict=True):
        assert section["verdict"] == section["badge"] == entry["verdict"] and section["visible"]
        if entry["verdict"] == "error":
            assert section["message"] == entry["error"]
    assert "fails" in shown["gate"]


def test_images_are_inline_and_decode(audited, shown: dict):
    text = audited.html.read_text()
    assert not re.search(r'(src|href)="(?!data:|#)', text), "the report must not fetch anything"
    assert shown["images"] > 0 and shown["decoded"] == shown["images"]


def test_evidence_and_score_against_threshold(audited, shown: dict):
    """Scored suspects show owner and suspect images side by side, two histograms, and the score on the
    side of the threshold its verdict says."""
    for section, entry in zip(shown["sections"], audited.results["suspects"], strict=True):
        if entry["best_owner"] is None:
            assert section["score_x"] is None and section["critical"] == 0
            continue
        assert section["critical"] == section["suspect"] > 0 and section["histogram"] == 2
        if entry["verdict"] == "derived":
            assert section["score_x"] > section["threshold_x"]
        else:
            assert section["score_x"] < section["threshold_x"]


@pytest.mark.browser
def test_screenshot(audited, tmp_path: Path):
    if CHROMIUM is None:
        pytest.skip("no chromium binary")
    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,1600", audited.html.as_uri())
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a blank page compresses to a few kB
