"""Campaign reports: CSV, JSON lines, or one self-contained HTML page.

CSV cells that start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return are
prefixed with ``'`` so that a spreadsheet shows them as text instead of running them as a
formula (OWASP "CSV injection"): names and error texts come from customers and from the
API, and the file is meant to be opened in Excel.

The HTML page has no external resource at all (no CDN, no font, no script): the funnel,
failures and the sends-over-time chart are plain HTML and inline SVG.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from ._ledger import RowState
from ._store import Store
from ._time import iso_utc
from ._tracking import status

__all__ = ["REPORT_COLUMNS", "escape_cell", "report_rows", "write_report"]

REPORT_COLUMNS = (
    "line",
    "to_number",
    "to_name",
    "state",
    "broadcast_id",
    "sent_at",
    "delivery_status",
    "error_code",
    "error_reason",
    "delivery_error",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not execute.

    >>> escape_cell("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> escape_cell("Budi")
    'Budi'
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def report_rows(store: Store, campaign_id: str) -> Iterator[dict[str, Any]]:
    """One dict per input row, in line order: ledger rows, then rejected rows."""
    for row in store.iter_rows(campaign_id):
        data = row.to_dict()
        data["sent_at"] = iso_utc(row.sent_at)
        yield {k: data.get(k) for k in REPORT_COLUMNS}
    for reject in store.iter_rejects(campaign_id):
        yield {
            "line": reject.line,
            "to_number": reject.to_number,
            "to_name": None,
            "state": "rejected",
            "broadcast_id": None,
            "sent_at": None,
            "delivery_status": None,
            "error_code": reject.code,
            "error_reason": f"{reject.field}: {reject.reason}",
            "delivery_error": None,
        }


def write_report(store: Store, campaign_id: str, out: str | Path) -> Path:
    """Write the report; the format follows the suffix: ``.csv``, ``.jsonl`` or ``.html``."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".html", ".htm"):
        raise ValidationError("out", f"{path.name}: expected a .csv, .jsonl or .html file")
    summary = status(store, campaign_id)  # raises for an unknown campaign
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8-sig") as f:
            writer = csv.writer(f)
            writer.writerow(REPORT_COLUMNS)
            for item in report_rows(store, campaign_id):
                writer.writerow([escape_cell(item[c]) for c in REPORT_COLUMNS])
    elif suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for item in report_rows(store, campaign_id):
                f.write(json.dumps(item, ensure_ascii=False) + "\n")
    else:
        path.write_text(_html(store, campaign_id, summary.to_dict()), encoding="utf-8")
    return path


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:960px;padding:0 1rem;color:#1f2933;background:#fff}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:2rem 0 .5rem}
.muted{color:#616e7c}.cards{display:flex;gap:.75rem;flex-wrap:wrap;margin-top:1rem}
.card{border:1px solid #e4e7eb;border-radius:8px;padding:.6rem .9rem;min-width:7rem}
.card b{display:block;font-size:1.4rem}
.funnel .bar{display:flex;align-items:center;margin:.3rem 0}
.funnel .label{width:7rem}.funnel .track{flex:1;background:#f0f4f8;border-radius:4px}
.funnel .fill{background:#2f80ed;color:#fff;border-radius:4px;padding:.15rem .5rem;
white-space:nowrap;min-width:2.5rem;box-sizing:border-box}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;
border-bottom:1px solid #e4e7eb}th{background:#f5f7fa}td.n{text-align:right}
svg text{font-size:11px;fill:#616e7c}
"""


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _funnel(counts: dict[str, int], delivery: dict[str, int]) -> str:
    accepted = counts.get("accepted", 0)
    read = delivery.get("read", 0)
    delivered = delivery.get("delivered", 0) + read
    sent = delivery.get("sent", 0) + delivered
    steps = [("accepted", accepted), ("sent", sent), ("delivered", delivered), ("read", read)]
    top = max(accepted, 1)
    bars = []
    for label, value in steps:
        width = max(0.0, min(100.0, 100.0 * value / top))
        bars.append(
            f'<div class="bar"><span class="label">{label}</span><div class="track">'
            f'<div class="fill" style="width:{width:.1f}%">{value}</div></div></div>'
        )
    return '<div class="funnel">' + "".join(bars) + "</div>"


def _timeline(store: Store, campaign_id: str) -> str:
    def sent_times() -> Iterator[float]:
        for r in store.iter_rows(campaign_id, [RowState.ACCEPTED]):
            if r.sent_at is not None:
                yield r.sent_at

    # Two passes over the ledger (range, then counts): constant memory for any campaign size.
    first = min(sent_times(), default=None)
    if first is None:
        return '<p class="muted">Nothing sent yet.</p>'
    last = max(sent_times())
    span = max(last - first, 1.0)
    bins = 48
    width = span / bins
    counts = [0] * bins
    for t in sent_times():
        counts[min(int((t - first) / width), bins - 1)] += 1
    top = max(counts)
    w, h, pad = 900, 180, 24
    bar = (w - 2 * pad) / bins
    rects = []
    for i, c in enumerate(counts):
        bh = (h - 2 * pad) * c / top
        rects.append(
            f'<rect x="{pad + i * bar:.1f}" y="{h - pad - bh:.1f}" width="{bar - 2:.1f}" '
            f'height="{bh:.1f}" fill="#2f80ed"><title>{c} accepted</title></rect>'
        )
    return (
        f'<svg role="img" aria-label="sends over time" viewBox="0 0 {w} {h}" width="100%">'
        + "".join(rects)
        + f'<text x="{pad}" y="{h - 6}">{_esc(iso_utc(first))}</text>'
        + f'<text x="{w - pad}" y="{h - 6}" text-anchor="end">{_esc(iso_utc(last))}</text>'
        + f'<text x="{pad}" y="14">at most {top} per {_duration(width)}</text></svg>'
    )


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 600:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _html(store: Store, campaign_id: str, summary: dict[str, Any]) -> str:
    campaign = summary["campaign"]
    counts: dict[str, int] = summary["counts"]
    delivery: dict[str, int] = summary["delivery"]
    cards = "".join(
        f'<div class="card"><span class="muted">{_esc(k)}</span><b>{v}</b></div>'
        for k, v in counts.items()
    )
    failures = summary["failures"]
    if failures:
        rows = "".join(
            f"<tr><td>{_esc(f['kind'])}</td><td>{_esc(f['code'])}</td>"
            f"<td>{_esc(f['reason'])}</td><td class='n'>{f['count']}</td></tr>"
            for f in failures
        )
        failure_table = (
            f"<table><tr><th>kind</th><th>code</th><th>reason</th><th>rows</th></tr>{rows}</table>"
        )
    else:
        failure_table = '<p class="muted">No failures.</p>'
    rejects = ", ".join(f"{_esc(k)}: {v}" for k, v in summary["rejects"].items()) or "none"
    template = campaign["template"]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>Campaign {_esc(campaign['id'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_esc(campaign['name'])}</h1>"
        f"<div class='muted'>campaign {_esc(campaign['id'])} · template "
        f"{_esc(template['name'])} ({_esc(template['language'])}) · state "
        f"{_esc(campaign['state'])}</div>"
        f"<div class='cards'>{cards}</div>"
        f"<h2>Delivery funnel</h2>{_funnel(counts, delivery)}"
        f"<h2>Failures by reason</h2>{failure_table}"
        f"<h2>Sends over time</h2>{_timeline(store, campaign_id)}"
        f"<h2>Rows not imported</h2><p>{rejects}</p>"
        "</body></html>"
    )
