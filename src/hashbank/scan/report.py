"""The scan report in HTML, CSV and JSON Lines: the same summary, matches and unreadable files.

Rows are in path order and nothing depends on timing except ``elapsed_seconds``,
so a resumed or distributed scan writes the same report as a plain one. Only
paths, sizes, fingerprints, bank entries and reasons are written: no media,
no thumbnails. File names on a seized drive are hostile input: HTML escapes
them, CSV defuses cells a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import html
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hashbank.scan.examine import Record

MATCH_FIELDS = ["path", "size", "sha256", "bank", "entry_id", "category", "signal", "distance"]
UNREADABLE_FIELDS = ["path", "kind", "size", "reason"]


@dataclass(slots=True)
class Report:
    summary: dict[str, Any]
    matches: list[dict[str, Any]]
    unreadable: list[dict[str, Any]]


def build_report(records: list[Record], elapsed: float) -> Report:
    """Summary counts plus one row per match and per unreadable file, in path order."""
    records = sorted(records, key=lambda r: r.path)
    by_bank: dict[str, Counter[str]] = {}
    by_category: Counter[str] = Counter()
    for r in records:
        pairs = {(m["bank"], m["category"] or "uncategorised") for m in r.matches}
        for bank, category in pairs:
            by_bank.setdefault(bank, Counter())[category] += 1
        by_category.update({category for _, category in pairs})
    files = [r for r in records if r.kind != "folder"]
    summary = {
        "files_seen": len(files),
        "images": sum(r.kind == "image" for r in files),
        "videos": sum(r.kind == "video" for r in files),
        "archives": sum(r.kind == "archive" for r in files),
        "hashed": sum(bool(r.signals) for r in files),
        "matched_files": sum(bool(r.matches) for r in files),
        "matches": sum(len(r.matches) for r in files),
        "matched_by_bank": {b: dict(sorted(c.items())) for b, c in sorted(by_bank.items())},
        "matched_by_category": dict(sorted(by_category.items())),
        "unreadable": sum(bool(r.error) for r in records),
        "unreadable_by_reason": dict(sorted(Counter(_reason_class(r.error) for r in records if r.error).items())),
        "elapsed_seconds": round(elapsed, 3),
    }
    matches = [
        {"path": r.path, "size": r.size, "sha256": r.signals.get("sha256"), **{k: m[k] for k in MATCH_FIELDS[3:]}}
        for r in records
        for m in r.matches
    ]
    unreadable = [{"path": r.path, "kind": r.kind, "size": r.size, "reason": r.error} for r in records if r.error]
    return Report(summary, matches, unreadable)


def _reason_class(reason: str | None) -> str:
    """Reasons grouped for the summary: sizes and counts vary, the cause does not."""
    return re.sub(r"\d+", "N", reason or "")


@contextmanager
def _output(path: str | Path, newline: str | None = None) -> Iterator[IO[str]]:
    if str(path) == "-":
        yield sys.stdout
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Names that are not UTF-8 on disk come back from the OS with surrogates: write them escaped.
    with open(path, "w", encoding="utf-8", errors="backslashreplace", newline=newline) as fh:
        yield fh


def write_jsonl(report: Report, path: str | Path) -> None:
    """A summary line, then one line per match, then one per unreadable file (``record`` says which)."""
    with _output(path) as fh:
        fh.write(json.dumps({"record": "summary", **report.summary}) + "\n")
        for row in report.matches:
            fh.write(json.dumps({"record": "match", **row}) + "\n")
        for row in report.unreadable:
            fh.write(json.dumps({"record": "unreadable", **row}) + "\n")


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(report: Report, path: str | Path) -> None:
    """One table: summary rows (key, value), match rows, unreadable rows, told apart by ``record``."""
    fields = ["record", "key", "value", *MATCH_FIELDS, "kind", "reason"]
    with _output(path, newline="") as fh:
        out = csv.DictWriter(fh, fields)
        out.writeheader()
        for key, value in _flatten(report.summary):
            out.writerow({"record": "summary", "key": _cell(key), "value": value})
        for row in report.matches:
            out.writerow({"record": "match", **{k: _cell(v) for k, v in row.items()}})
        for row in report.unreadable:
            out.writerow({"record": "unreadable", **{k: _cell(v) for k, v in row.items()}})


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.n{text-align:right}td.p{font-family:monospace;word-break:break-all}
svg text{font:12px system-ui,sans-serif}
"""


def _table(headers: list[str], rows: list[dict[str, Any]], mono: tuple[str, ...] = ("path", "sha256")) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for h in headers:
            value = row.get(h)
            cls = ' class="p"' if h in mono else ' class="n"' if isinstance(value, int) else ""
            cells.append(f"<td{cls}>{html.escape('' if value is None else str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _chart(counts: dict[str, int]) -> str:
    """Horizontal bars of matched files per category, as inline SVG."""
    if not counts:
        return "<p>No matches.</p>"
    top, bar, label, width = max(counts.values()), 22, 180, 360
    rows = []
    for i, (category, n) in enumerate(counts.items()):
        y, w = i * (bar + 6), max(1, round(width * n / top))
        rows.append(
            f'<text x="{label - 6}" y="{y + 15}" text-anchor="end">{html.escape(category)}</text>'
            f'<rect x="{label}" y="{y}" width="{w}" height="{bar}" fill="#b22"/>'
            f'<text x="{label + w + 6}" y="{y + 15}">{n}</text>'
        )
    height = len(counts) * (bar + 6)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label + width + 60}" height="{height}" role="img" '
        f'aria-label="matched files by category">{"".join(rows)}</svg>'
    )


def render_html(report: Report) -> str:
    """A self-contained page: inline CSS and SVG, no scripts, nothing fetched."""
    summary = [
        {"item": key, "value": value} for key, value in _flatten(report.summary) if key != "elapsed_seconds"
    ]
    elapsed = report.summary["elapsed_seconds"]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">'
        f"<title>hashbank scan report</title><style>{_CSS}</style></head><body>\n"
        "<h1>hashbank scan report</h1>\n<h2>Summary</h2>\n"
        + _table(["item", "value"], summary, mono=())
        + f'\n<p>Time taken: <span id="elapsed">{elapsed}</span> s</p>\n'
        + "<h2>Matched files by category</h2>\n"
        + _chart(report.summary["matched_by_category"])
        + f"\n<h2>Matched files ({len(report.matches)} matches)</h2>\n"
        + _table(MATCH_FIELDS, report.matches)
        + f"\n<h2>Unreadable or not hashed ({len(report.unreadable)})</h2>\n"
        + _table(UNREADABLE_FIELDS, report.unreadable)
        + "\n</body></html>\n"
    )


def write_html(report: Report, path: str | Path) -> None:
    with _output(path) as fh:
        fh.write(render_html(report))
