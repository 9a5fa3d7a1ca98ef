"""The search-analytics report as text for editors (``faq-index report``): the report dict in,
lines out (pure; ``service.analytics`` computes the dict, ``GET /v1/analytics`` serves it).

Each list shows a query's count and the section the service ranks first for it now; the
zero-result and unanswered queries are then repeated as lines of ``corpus/alternates.txt``
(``slug#anchor: the phrasing``), ready to check and paste.
"""

from __future__ import annotations

_LISTS = (
    ("top_queries", "Top queries"),
    ("zero_results", "Top zero-result queries"),
    ("low_confidence", "Top unanswered queries (answer confidence below the threshold)"),
)


def _entry(entry: dict) -> str:
    first = entry["first"]
    ranked = f"{first['id']}  ({first['question']})" if first else "(nothing ranks for it)"
    return f"  {entry['count']:>6}  {entry['query']}\n          first: {ranked}"


def render_report(report: dict) -> str:
    """The report as the CLI prints it."""
    lines = [f"Search analytics {report['from']} to {report['to']} (UTC days; "
             f"queries counted at least {report['min_count']} times)"]
    if not report["enabled"]:
        lines.append("FAQ_ANALYTICS is off: nothing new is being stored.")
    for key, title in _LISTS:
        lines += ["", f"{title}:"]
        lines += [_entry(e) for e in report[key]] or ["  (none)"]
    lines += ["", "For corpus/alternates.txt (check each section before pasting):"]
    lines += report["alternates"] or ["# (none)"]
    return "\n".join(lines)
