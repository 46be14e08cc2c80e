"""Tools of the nightly-report example: a day's numbers from an event log, and the report file.

The log is JSON lines, one event each::

    {"ts": "2026-12-02T08:15:03Z", "type": "order", "amount": 42.5}
    {"ts": "2026-12-02T08:16:40Z", "type": "checkout_error", "error": "payment_timeout"}
    {"ts": "2026-12-02T09:01:12Z", "type": "signup"}

The file is read one line at a time, so a log of any size takes little memory.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from pydantic import BaseModel


class DayMetrics(BaseModel):
    day: str
    orders: int
    revenue: float
    refunds: int
    signups: int
    checkout_errors: int
    checkout_failure_rate: float  # failed checkouts / attempted checkouts
    top_errors: dict[str, int]
    orders_change_pct: float | None  # against the day before; None when it had no orders
    revenue_change_pct: float | None
    unreadable_lines: int


def _yesterday() -> str:
    return (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()


def _change(now: float, before: float) -> float | None:
    return round(100 * (now - before) / before, 1) if before else None


def daily_metrics(events: str, day: str | None = None) -> DayMetrics:
    """Orders, revenue, refunds, signups and checkout errors of one day, against the day before.

    Args:
        events: Path of the JSON-lines event log.
        day: The day (YYYY-MM-DD, UTC); default: yesterday.
    """
    day = day or _yesterday()
    previous = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    counts: dict[str, Counter[str]] = {day: Counter(), previous: Counter()}
    revenue = {day: 0.0, previous: 0.0}
    errors: Counter[str] = Counter()
    unreadable = 0
    with Path(events).open(encoding="utf-8") as log:
        for line in log:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                when = str(event["ts"])[:10]
                kind = str(event["type"])
            except (ValueError, KeyError, TypeError):
                unreadable += 1
                continue
            if when not in counts:
                continue
            counts[when][kind] += 1
            if kind == "order":
                revenue[when] += float(event.get("amount") or 0)
            if kind == "checkout_error" and when == day:
                errors[str(event.get("error") or "unknown")] += 1
    today = counts[day]
    attempts = today["order"] + today["checkout_error"]
    return DayMetrics(
        day=day,
        orders=today["order"],
        revenue=round(revenue[day], 2),
        refunds=today["refund"],
        signups=today["signup"],
        checkout_errors=today["checkout_error"],
        checkout_failure_rate=round(today["checkout_error"] / attempts, 4) if attempts else 0.0,
        top_errors=dict(errors.most_common(3)),
        orders_change_pct=_change(today["order"], counts[previous]["order"]),
        revenue_change_pct=_change(revenue[day], revenue[previous]),
        unreadable_lines=unreadable,
    )


def write_report(out_dir: str, metrics: DayMetrics, write_up: str, page: str | None = None) -> str:
    """Write the day's report as Markdown (``OUT_DIR/report-DAY.md``) and return its path.

    Args:
        out_dir: The folder for the reports (created if missing).
        metrics: The day's numbers.
        write_up: The model's bullet points.
        page: The on-call page, when one was sent.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"report-{metrics.day}.md"
    rows = [
        ("orders", metrics.orders, metrics.orders_change_pct),
        ("revenue", f"{metrics.revenue:.2f}", metrics.revenue_change_pct),
        ("refunds", metrics.refunds, None),
        ("signups", metrics.signups, None),
        ("checkout failure rate", f"{metrics.checkout_failure_rate:.1%}", None),
    ]
    table = "\n".join(
        f"| {name} | {value} | {'' if change is None else f'{change:+.1f}%'} |"
        for name, value, change in rows
    )
    text = (
        f"# Shop report for {metrics.day}\n\n"
        + (f"**Paged on-call:** {page}\n\n" if page else "")
        + f"{write_up.strip()}\n\n| metric | value | vs day before |\n| --- | --- | --- |\n{table}\n"
    )
    path.write_text(text, encoding="utf-8")
    return str(path)
