"""The audit report people look at: one self-contained HTML page (images inline as data: URIs, charts as SVG).

For every suspect it shows the verdict against its best-matching owner and the evidence
behind it: a table of every piece (weights, behaviour) with its p-value and the one that
decided; the owner's critical images, and either the probes with the owner's and the
suspect's residuals on them (``response`` method) or the suspect's own critical images
(``paper``); a histogram of the two sides' values; and where the suspect's score sits
against the owner's calibrated null distribution and threshold.  The suspect's evidence
is read from the audit's cache, where the run left it.  The page has no scripts and
fetches nothing, so it can be archived or attached as it is.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable

import numpy as np

from verifier._version import __version__
from verifier.auditing.cache import Cache
from verifier.auditing.results import AuditResult, AuditRow, Owner, PairResult
from verifier.method.evidence import MEANING, Evidence, format_p
from verifier.method.fingerprint import Fingerprint
from verifier.png import encode_png

#: At most this many images per strip.
MAX_IMAGES = 4
_OWNER_COLOUR, _SUSPECT_COLOUR = "#1f77b4", "#ff7f0e"
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: middle; }
.verdict { font-weight: bold; padding: 1px 8px; border-radius: 3px; color: white; }
.derived { background: #c62828; } .independent { background: #2e7d32; } .similar { background: #ef6c00; }
.incomparable { background: #757575; } .error { background: #6a1b9a; }
section.suspect { border-top: 2px solid #ddd; margin-top: 1.5em; padding-top: 0.5em; }
img { image-rendering: pixelated; width: 96px; height: 96px; margin: 2px; border: 1px solid #aaa; }
.strip th { width: 190px; font-weight: normal; }
.charts { display: flex; gap: 2em; flex-wrap: wrap; }
p.message { color: #6a1b9a; }
tr.decided td { font-weight: bold; }
"""


def _image(array: np.ndarray, css_class: str) -> str:
    data = base64.b64encode(encode_png(array)).decode()
    return f'<img class="{css_class}" alt="{css_class}" src="data:image/png;base64,{data}">'


def _strip(label: str, images: np.ndarray, css_class: str) -> str:
    cells = "".join(_image(image, css_class) for image in images[:MAX_IMAGES])
    return f"<tr><th>{html.escape(label)}</th><td>{cells}</td></tr>"


def _residual_images(residuals: np.ndarray, gain: float) -> np.ndarray:
    """Residuals as images: grey is zero, brighter and darker are the model adding and removing."""
    return np.clip(0.5 + gain * residuals, 0, 1)


def _histogram(owner: np.ndarray, suspect: np.ndarray, title: str) -> str:
    """Two overlaid histograms (owner, suspect) over a common range, as SVG."""
    width, height, bins = 320, 140, 40
    low, high = float(min(owner.min(), suspect.min())), float(max(owner.max(), suspect.max()))
    high = high if high > low else low + 1.0
    lines = []
    counts = [np.histogram(values, bins=bins, range=(low, high), density=True)[0] for values in (owner, suspect)]
    top = max(float(max(count.max() for count in counts)), 1e-12)
    for count, colour, name in zip(counts, (_OWNER_COLOUR, _SUSPECT_COLOUR), ("owner", "suspect"), strict=True):
        points = " ".join(f"{10 + (i + 0.5) * (width - 20) / bins:.1f},{height - 20 - c / top * (height - 40):.1f}"
                          for i, c in enumerate(count))
        lines.append(f'<polyline class="{name}" fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
    return (f'<svg class="histogram" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<text x="10" y="14">{html.escape(title)}</text>{"".join(lines)}'
            f'<line x1="10" y1="{height - 20}" x2="{width - 10}" y2="{height - 20}" stroke="#999"/>'
            f'<text x="10" y="{height - 5}" font-size="11">{low:.3g}</text>'
            f'<text x="{width - 10}" y="{height - 5}" font-size="11" text-anchor="end">{high:.3g}</text>'
            f'<text x="{width / 2}" y="{height - 5}" font-size="11" text-anchor="middle">'
            f'<tspan fill="{_OWNER_COLOUR}">owner</tspan> / <tspan fill="{_SUSPECT_COLOUR}">suspect</tspan></text>'
            "</svg>")


def _score_scale(owner: Owner, behaviour: Evidence) -> str:
    """The owner's behavioural null distribution (reference scores, fitted normal), the threshold the behaviour
    evidence was held to and the suspect's score."""
    calibration = owner.fingerprint.calibration
    width, height = 480, 150
    threshold, score = behaviour.threshold, behaviour.score
    # The axis spans the null (+-6 std) and the threshold; a score far outside sits at the edge, value in its label.
    low = min(*calibration.null_scores, calibration.mean - 6 * calibration.std)
    high = max(*calibration.null_scores, threshold, calibration.mean + 6 * calibration.std)
    low, high = min(low, max(score, low - (high - low))), max(high, min(score, high + (high - low)))

    def x(value: float) -> float:
        return 20 + (min(max(value, low), high) - low) / (high - low) * (width - 40)

    def anchor(position: float) -> str:
        return "start" if position < width / 4 else "end" if position > 3 * width / 4 else "middle"

    grid = np.linspace(low, high, 120)
    density = np.exp(-0.5 * ((grid - calibration.mean) / calibration.std) ** 2)
    curve = " ".join(f"{x(g):.1f},{height - 30 - d * 80:.1f}" for g, d in zip(grid, density, strict=True))
    ticks = "".join(f'<line class="null" x1="{x(s):.1f}" y1="{height - 36}" x2="{x(s):.1f}" y2="{height - 24}" '
                    'stroke="#555" stroke-width="2"/>' for s in calibration.null_scores)
    colour = "#ef6c00" if behaviour.significant else "#2e7d32"
    at, mark = x(threshold), x(score)
    return (f'<svg class="score-scale" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<text x="10" y="14">score against the calibrated null ({len(calibration.null_scores)} references)</text>'
            f'<polyline fill="none" stroke="#999" points="{curve}"/>{ticks}'
            f'<line x1="20" y1="{height - 30}" x2="{width - 20}" y2="{height - 30}" stroke="#999"/>'
            f'<line class="threshold" x1="{at:.1f}" y1="30" x2="{at:.1f}" y2="{height - 30}" stroke="#000" '
            f'stroke-dasharray="4 3"/><text x="{at:.1f}" y="28" font-size="11" text-anchor="{anchor(at)}">'
            f"threshold {threshold:.3f} (behaviour p {_p(behaviour.p_value)})</text>"
            f'<line class="score" x1="{mark:.1f}" y1="40" x2="{mark:.1f}" y2="{height - 30}" stroke="{colour}" '
            f'stroke-width="3"/><text x="{mark:.1f}" y="{height - 10}" font-size="11" text-anchor="{anchor(mark)}" '
            f'fill="{colour}">behaviour score {score:.3f}</text></svg>')


def _evidence_table(pair: PairResult) -> str:
    """Every piece of evidence with its p-value; the one that decided is marked."""
    body = "".join(f'<tr class="{"decided" if e.kind == pair.decided_by else ""}"><td>{e.kind}</td>'
                   f"<td>{e.method}</td><td>{_fmt(e.score, '.3f')}</td><td>{_fmt(e.threshold, '.3f')}</td>"
                   f"<td>{_p(e.p_value)}</td><td>{'yes' if e.significant else 'no'}</td>"
                   f"<td>{'decided' if e.kind == pair.decided_by else ''}</td><td>{html.escape(e.detail)}</td></tr>"
                   for e in pair.evidence)
    return (f'<p class="meaning">{html.escape(pair.verdict)}: {html.escape(MEANING.get(pair.verdict, ""))}</p>'
            '<table class="evidence"><tr><th>evidence</th><th>method</th><th>score</th><th>threshold</th>'
            f"<th>p-value</th><th>significant</th><th></th><th>detail</th></tr>{body}</table>")


def _paper_view(fp: Fingerprint, suspect: np.ndarray) -> tuple[list[str], str]:
    """The suspect's own critical images beside the owner's, and their pixel histograms."""
    return ([_strip("suspect's critical images", suspect, "suspect")],
            _histogram(fp.critical.ravel(), suspect.ravel(), "pixel values of the critical images"))


def _response_view(fp: Fingerprint, suspect: np.ndarray) -> tuple[list[str], str]:
    """The probes, the owner's and the suspect's residuals on them (one gain), and the residuals' histograms."""
    count = len(fp.critical)
    spread = float(np.percentile(np.abs(fp.residuals[:count]), 99)) or 1.0
    gain = 0.45 / spread
    return ([_strip("probes (degraded critical images)", fp.probes.inputs[:count], "probe"),
             _strip("owner's residuals on them", _residual_images(fp.residuals[:count], gain), "owner-residual"),
             _strip("suspect's residuals on them", _residual_images(suspect[:count], gain), "suspect")],
            _histogram(fp.residuals.ravel(), suspect.ravel(), "residual values on all probes"))


#: How each method's suspect evidence is drawn (see :class:`verifier.method.behaviour.Method`).
_VIEWS: dict[str, Callable[[Fingerprint, np.ndarray], tuple[list[str], str]]] = {
    "paper": _paper_view, "response": _response_view}


def _evidence(owner: Owner, pair: PairResult, suspect: np.ndarray) -> str:
    fp = owner.fingerprint
    strips, chart = _VIEWS[fp.settings.method](fp, suspect)
    rows = [_strip("owner's critical images", fp.critical, "critical"), *strips]
    behaviour = pair.piece("behaviour")
    scale = _score_scale(owner, behaviour) if behaviour is not None else ""
    return f'<table class="strip">{"".join(rows)}</table><div class="charts">{scale}{chart}</div>'


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def _p(value: float | None) -> str:
    return "-" if value is None else html.escape(format_p(value))


def _pairs_table(row: AuditRow) -> str:
    body = "".join(f"<tr><td>{html.escape(p.owner)}</td><td>{p.verdict}</td><td>{_fmt(p.score, '.3f')}</td>"
                   f"<td>{_fmt(p.threshold, '.3f')}</td><td>{_p(p.p_value)}</td>"
                   f"<td>{'cached' if p.cached else f'{p.seconds:.1f} s'}</td>"
                   f"<td>{html.escape(p.message or '')}</td></tr>" for p in row.pairs)
    return ("<table class=\"pairs\"><tr><th>owner</th><th>verdict</th><th>score</th><th>threshold</th>"
            f"<th>p-value</th><th>time</th><th>note</th></tr>{body}</table>")


def _section(index: int, row: AuditRow, owners: dict[str, Owner], cache: Cache | None) -> str:
    best = row.best
    facts = [f"format {html.escape(row.format or '?')}", f"{row.seconds:.1f} s"]
    if row.endpoint is not None:  # behaviour only: say so, with what questioning the endpoint cost
        facts[1:1] = [f"endpoint <code>{html.escape(row.endpoint['url'])}</code>",
                      f"{row.endpoint.get('queries', 0)} queries (budget {row.endpoint['max_queries']})",
                      "weights not available"]
    if best:
        facts[1:1] = [f"best owner <b>{html.escape(best.owner)}</b>", f"score {_fmt(best.score, '.3f')}",
                      f"threshold {_fmt(best.threshold, '.3f')}", f"p-value {_p(best.p_value)}"]
    parts = [f'<section class="suspect" id="suspect-{index}" data-verdict="{row.verdict}">',
             f'<h2>{html.escape(row.name)} <span class="verdict {row.verdict}">{row.verdict}</span></h2>',
             f'<p class="facts">{" · ".join(facts)}</p>']
    if row.message and row.verdict in ("error", "incomparable"):
        parts.append(f'<p class="message">{html.escape(row.message)}</p>')
    if best is not None and best.evidence:
        parts.append(_evidence_table(best))
    if best is not None:
        found = cache.read_evidence(best.evidence_key) if cache is not None and best.evidence_key else None
        parts.append(_evidence(owners[best.owner], best, found) if found is not None
                     else "<p>the suspect's evidence is no longer in the cache</p>")
    if row.pairs:
        parts.append(_pairs_table(row))
    parts.append("</section>")
    return "".join(parts)


def render(result: AuditResult, fail_on: tuple[str, ...]) -> str:
    """The whole report as one HTML string."""
    owners = {owner.name: owner for owner in result.owners}
    cache = Cache(result.cache) if result.cache else None
    owner_rows = "".join(
        f"<tr><td>{html.escape(o.name)}</td><td><code>{o.sha256[:16]}</code></td>"
        f"<td>{o.fingerprint.settings.method}</td><td>{o.fingerprint.calibration.fpr:g}</td>"
        f"<td>{o.fingerprint.calibration.threshold:.3f}</td><td>{len(o.fingerprint.calibration.null_scores)}</td></tr>"
        for o in result.owners)
    summary_rows = "".join(
        f'<tr><td><a href="#suspect-{i}">{html.escape(row.name)}</a></td><td>{html.escape(row.format or "?")}</td>'
        f"<td>{html.escape(row.best.owner) if row.best else '-'}</td>"
        f"<td>{_fmt(row.best.score if row.best else None, '.3f')}</td>"
        f"<td>{_p(row.best.p_value if row.best else None)}</td>"
        f'<td><span class="verdict {row.verdict}">{row.verdict}</span></td><td>{row.seconds:.1f} s</td></tr>'
        for i, row in enumerate(result.rows))
    counts = ", ".join(f"{count} {outcome}" for outcome, count in result.counts().items())
    failing = result.failing(fail_on)
    gate = (f"fails ({len(failing)} suspect(s) {'/'.join(fail_on)})" if failing
            else f"passes (fail on: {', '.join(fail_on)})")
    sections = "".join(_section(i, row, owners, cache) for i, row in enumerate(result.rows))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>verifier audit</title>'
            f"<style>{_STYLE}</style></head><body>"
            f"<h1>verifier audit</h1><p>verifier {__version__}, {html.escape(result.created)}; "
            f"{len(result.rows)} suspects: {counts}; the gate <b class=\"gate\">{gate}</b>.</p>"
            "<h2>Owners</h2><table><tr><th>owner</th><th>fingerprint sha256</th><th>method</th><th>FPR</th>"
            f"<th>threshold</th><th>references</th></tr>{owner_rows}</table>"
            "<h2>Suspects</h2><table class=\"summary\"><tr><th>suspect</th><th>format</th><th>best owner</th>"
            f"<th>score</th><th>p-value</th><th>verdict</th><th>time</th></tr>{summary_rows}</table>"
            f"{sections}</body></html>")
