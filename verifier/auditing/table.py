"""The summary table people read: one line per suspect, then the counts."""

from __future__ import annotations

from verifier.auditing.results import AuditResult
from verifier.method.evidence import format_p


def table(result: AuditResult) -> str:
    """The summary table people read: one line per suspect, then the counts."""
    header = ("suspect", "format", "best owner", "evidence", "score", "p-value", "verdict", "time", "note")
    lines = []
    for row in result.rows:
        best = row.best
        evidence = (best.decided_by or "none significant") if best and best.evidence else "-"
        lines.append((row.name, row.format or "?", best.owner if best else "-", evidence,
                      f"{best.score:.3f}" if best and best.score is not None else "-",
                      format_p(best.p_value) if best and best.p_value is not None else "-", row.verdict,
                      f"{row.seconds:.1f}s", (row.message or "")[:100] if row.verdict in ("error", "incomparable")
                      else ""))
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    text = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in (header, *lines)]
    counts = ", ".join(f"{count} {outcome}" for outcome, count in result.counts().items())
    workers = f"{result.jobs} Ray task(s) at once" if result.engine == "ray" else f"{result.jobs} worker(s)"
    text.append(f"{len(result.rows)} suspects against {len(result.owners)} owner(s): {counts} "
                f"({result.seconds:.1f} s, {workers} x {result.threads} thread(s))")
    return "\n".join(text)
