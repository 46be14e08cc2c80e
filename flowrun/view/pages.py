"""The viewer's pages: the runs list, a run (DAG and a step), a batch (records, a record).

Each function takes the run store and the query parameters and returns ``(status, html)``.
Unknown runs, steps and records raise ``UsageError`` (the server answers a 404 page).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from flowrun.errors import UsageError
from flowrun.store import history
from flowrun.store.runs import RunStore
from flowrun.view import dag
from flowrun.view.html import badge, esc, facts, page, pretty, seconds, step_panel, usd

PAGE_SIZE = 50


def not_found(message: str) -> str:
    return page(
        "not found", f'<h1>Not found</h1><p>{esc(message)}</p><p><a href="/">All runs</a></p>'
    )


def _int(value: str | None, default: int = 0) -> int:
    try:
        return max(0, int(value)) if value not in (None, "") else default
    except ValueError:
        return default


# --- the runs list ------------------------------------------------------------------------
def runs_page(store: RunStore, q: dict[str, str]) -> str:
    kind = q.get("kind") if q.get("kind") in history.KINDS else None
    status = q.get("status") if q.get("status") in history.STATUSES else None
    workflow = q.get("workflow") or None
    since_text = q.get("since") or ""
    offset = _int(q.get("offset"))
    problem = ""
    try:
        since = history.parse_since(since_text) if since_text else None
    except UsageError as exc:
        since, problem = None, exc.message
    rows = history.list_history(
        store,
        limit=PAGE_SIZE + 1,
        offset=offset,
        kind=kind,
        status=status,
        workflow=workflow,
        since=since,
    )
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    form = (
        '<form class="filters" method="get" action="/">'
        + _select("kind", ("", *history.KINDS), kind or "")
        + _select("status", ("", *history.STATUSES), status or "")
        + f'<label>workflow<input name="workflow" value="{esc(workflow or "")}"></label>'
        + f'<label>since<input name="since" placeholder="7d or 2026-12-01" value="{esc(since_text)}"></label>'
        + '<button type="submit">Filter</button></form>'
    )
    body = [f"<h1>Runs</h1>{form}"]
    if problem:
        body.append(f'<p class="badge s-failed">{esc(problem)}</p>')
    if not rows:
        body.append(
            '<p class="muted">No runs match. <code>flowrun run FILE</code> records one.</p>'
        )
    else:
        body.append(
            '<table id="runs"><tr><th>run</th><th>kind</th><th>workflow</th><th>status</th>'
            '<th>started (UTC)</th><th class="num">duration</th><th class="num">records</th>'
            '<th class="num">cost</th></tr>'
        )
        for r in rows:
            href = ("/run/" if r.kind == "run" else "/batch/") + quote(r.id)
            body.append(
                f'<tr><td><a href="{esc(href)}">{esc(r.id)}</a></td><td>{esc(r.kind)}</td>'
                f"<td>{esc(r.workflow)}</td><td>{badge(r.status)}</td>"
                f"<td>{esc(r.started_at[:19].replace('T', ' '))}</td>"
                f'<td class="num">{esc(seconds(r.duration_s))}</td>'
                f'<td class="num">{"–" if r.records is None else f"{r.records:,}"}</td>'
                f'<td class="num">{esc(usd(r.cost_usd, r.cost_note))}</td></tr>'
            )
        body.append("</table>")
    nav = []
    base = {k: v for k, v in q.items() if k != "offset" and v}
    if offset:
        nav.append(
            f'<a href="/?{esc(urlencode({**base, "offset": max(0, offset - PAGE_SIZE)}))}">← newer</a>'
        )
    if more:
        nav.append(
            f'<a href="/?{esc(urlencode({**base, "offset": offset + PAGE_SIZE}))}">older →</a>'
        )
    body.append(f'<div class="pager">{"".join(nav)}</div>')
    running = any(r.status == "running" for r in rows)
    return page("runs", "".join(body), refresh=running)


def _select(name: str, options: tuple[str, ...], chosen: str) -> str:
    opts = "".join(
        f'<option value="{esc(o)}"{" selected" if o == chosen else ""}>{esc(o or "any")}</option>'
        for o in options
    )
    return f'<label>{esc(name)}<select name="{esc(name)}">{opts}</select></label>'


# --- a single run -------------------------------------------------------------------------
def run_page(store: RunStore, run_id: str, q: dict[str, str]) -> str:
    try:
        row = store.get_run(run_id)
    except UsageError:
        raise UsageError(f"no run '{run_id}' in the run store") from None
    steps = {sid: s.to_json() for sid, s in store.load_steps(row.id).items()}
    chosen = q.get("step")
    if chosen is not None and chosen not in steps:
        raise UsageError(f"run {row.id} has no step '{chosen}' (yet)")
    deps = dag.dependencies(row.workflow_text)
    live = row.status == "running"
    nodes = {}
    for sid, parents in deps.items():
        waiting = (
            "running"
            if live and all(p in steps for p in parents)
            else ("waiting" if live else "not run")
        )
        nodes[sid] = dag.node_for(sid, steps.get(sid), waiting)
    duration = None
    if row.ended_at:
        duration = history.HistoryRow(
            row.id, "run", "", "", row.started_at, row.ended_at, 0
        ).duration_s
    body = [
        f"<h1>Run {esc(row.id)} {badge(row.status)}</h1>",
        facts(
            [
                (
                    "workflow",
                    f"{esc(row.workflow_name)} <span class=muted>{esc(row.workflow_path or '')}</span>",
                ),
                ("started", esc(row.started_at)),
                ("duration", esc(seconds(duration))),
                ("cost", esc(usd(row.cost_usd))),
                ("inputs", pretty(row.inputs)),
            ]
        ),
        "<h2>Steps</h2>",
        dag.render_svg(deps, nodes, f"/run/{quote(row.id)}?step="),
        '<p class="muted">Click a step for its transcript, output and error.</p>',
    ]
    if row.error:
        body.append(
            f'<div class="msg error"><div class="role">error</div>{pretty(row.error)}</div>'
        )
    if chosen is not None:
        body.append(step_panel(chosen, steps[chosen], store.load_transcript(row.id, chosen)))
    elif row.outputs:
        body.append(f"<h2>Outputs</h2>{pretty(row.outputs)}")
    return page(f"run {row.id}", "".join(body), refresh=live)


# --- a batch ------------------------------------------------------------------------------
def batch_page(store: RunStore, batch_id: str, q: dict[str, str]) -> str:
    rows = store.read(
        "SELECT id, workflow_name, workflow_path, workflow_text, records_path, output_path,"
        " status, started_at, ended_at, summary, pid, options FROM batches WHERE id=?",
        (batch_id,),
    )
    if not rows:
        raise UsageError(f"no batch '{batch_id}' in the run store")
    (
        bid,
        name,
        path,
        text,
        records_path,
        output_path,
        _,
        started,
        ended,
        summary_text,
        _,
        options,
    ) = rows[0]
    item = history.get_item(store, bid)
    if item is None:
        raise UsageError(f"no batch '{batch_id}' in the run store")
    summary = json.loads(summary_text) if summary_text else {}
    counts = history.batch_counts(store, bid)
    live = item.status == "running"
    done = counts["records"]
    total = _total(records_path, summary) if live else done
    pct = 100 * done / total if total else 100
    body = [
        f"<h1>{esc('Batch API batch' if item.kind == 'batch-api' else 'Batch')} {esc(bid)} {badge(item.status)}</h1>",
        facts(
            [
                ("workflow", f"{esc(name)} <span class=muted>{esc(path or '')}</span>"),
                ("records", esc(records_path or "stdin")),
                ("output", esc(output_path or "stdout")),
                ("started", esc(started)),
                ("duration", esc(seconds(item.duration_s))),
                ("cost", esc(usd(item.cost_usd, item.cost_note))),
                (
                    "progress",
                    f'<div class="bar"><span style="width:{pct:.1f}%"></span></div>'
                    f"{done:,} of {total:,} records"
                    if total
                    else f"{done:,} records",
                ),
                (
                    "by status",
                    " ".join(f"{badge(s)} {n:,}" for s, n in sorted(counts["by_status"].items()))
                    or '<span class="muted">none yet</span>',
                ),
            ]
        ),
    ]
    if summary.get("metrics"):
        body.append(f"<h2>Metrics</h2>{pretty(summary['metrics'])}")
    record = q.get("record")
    if record is not None:
        body.append(_record_panel(store, bid, text, record, q.get("step")))
    body.append(_records_table(store, bid, q))
    return page(f"batch {bid}", "".join(body), refresh=live and record is None)


def _total(records_path: str | None, summary: dict[str, Any]) -> int | None:
    """How many records the batch has (its file's lines), for the progress bar."""
    if not records_path:
        return None
    try:
        with open(records_path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return summary.get("records")


def _records_table(store: RunStore, bid: str, q: dict[str, str]) -> str:
    start = _int(q.get("from"))
    status = q.get("status") or None
    rows = history.batch_records(store, bid, offset=start, limit=PAGE_SIZE + 1, status=status)
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    out = [
        "<h2>Records</h2>",
        '<table id="records"><tr><th class="num">record</th><th class="num">line</th><th>status</th>'
        '<th class="num">cost</th><th class="num">time</th><th>error</th></tr>',
    ]
    for r in rows:
        href = f"/batch/{quote(bid)}?{urlencode({'record': r['index'], 'from': start})}#record"
        out.append(
            f'<tr><td class="num"><a href="{esc(href)}">{r["index"]}</a></td>'
            f'<td class="num">{esc(r["line"] if r["line"] is not None else "–")}</td>'
            f'<td>{badge(r["status"])}</td><td class="num">{esc(usd(r["cost_usd"]))}</td>'
            f'<td class="num">{esc(seconds(r["duration_s"]))}</td><td>{esc((r["error"] or "")[:120])}</td></tr>'
        )
    out.append("</table>")
    nav = []
    if start:
        back = max(0, start - PAGE_SIZE)
        nav.append(f'<a href="/batch/{esc(quote(bid))}?from={back}">← earlier records</a>')
    if more:
        nav.append(
            f'<a href="/batch/{esc(quote(bid))}?from={rows[-1]["index"] + 1}">later records →</a>'
        )
    out.append(f'<div class="pager">{"".join(nav)}</div>')
    return "".join(out)


def _record_panel(store: RunStore, bid: str, text: str, record: str, step: str | None) -> str:
    try:
        data = history.batch_record(store, bid, int(record))
    except (UsageError, ValueError):
        raise UsageError(f"batch {bid} has no record {record}") from None
    steps = data["steps"]
    if step is not None and step not in steps:
        raise UsageError(f"record {record} of batch {bid} has no step '{step}'")
    deps = dag.dependencies(text)
    nodes = {sid: dag.node_for(sid, steps.get(sid), "not run") for sid in deps}
    link = f"/batch/{quote(bid)}?{urlencode({'record': record})}&step="
    out = [
        f'<section class="panel" id="record"><h2>Record {esc(record)} {badge(data["status"])}</h2>',
        facts(
            [
                ("line", esc(data["line"] if data["line"] is not None else "–")),
                ("cost", esc(usd(data["cost_usd"]))),
                ("time", esc(seconds(data["duration_s"]))),
            ]
        ),
    ]
    if data.get("error"):
        out.append(
            f'<div class="msg error"><div class="role">error</div>{pretty(data["error"])}</div>'
        )
    out.append(dag.render_svg(deps, nodes, link))
    if step is not None:
        out.append(step_panel(step, steps[step], steps[step].get("transcript") or []))
    out.append("</section>")
    return "".join(out)
