"""Human-readable text for the CLI: outputs, the cost report, the estimate table."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from flowrun.results import usd_text

if TYPE_CHECKING:  # (the engine is heavy to import: `runs list` must stay fast)
    from flowrun.engine.estimate import Estimate
    from flowrun.results import RunResult


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def format_outputs(outputs: dict[str, Any]) -> str:
    """``name: value`` per output; multi-line values start on their own indented lines."""
    lines = []
    for name, value in outputs.items():
        text = format_value(value).rstrip("\n")
        if "\n" in text:
            lines.append(f"{name}:")
            lines.extend(f"  {line}" for line in text.split("\n"))
        else:
            lines.append(f"{name}: {text}")
    return "\n".join(lines)


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:.6f}"


def table(rows: list[list[str]], right: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def format_cost_report(result: RunResult) -> str:
    """The per-step table and the totals line of a run."""
    rows = [["step", "status", "model", "calls", "prompt", "completion", "cost", "time"]]
    for sid, step in result.steps.items():
        u = step.usage
        rows.append(
            [
                sid,
                step.status,
                step.model or "-",
                str(len(step.replied_calls)),
                str(u.prompt_tokens),
                str(u.completion_tokens),
                _step_cost(step),
                f"{step.duration_s:.2f}s",
            ]
        )
    c = result.cost
    total = (
        f"total: {c.calls} call{'' if c.calls == 1 else 's'}, {c.prompt_tokens} prompt + {c.completion_tokens} completion tokens"
        f" ({c.cached_tokens} prompt-cached, {c.reasoning_tokens} reasoning), {_total_usd(c)}"
    )
    if c.batch_discount:
        total += " (Batch API price: 50% off)"
    lines = [table(rows, right={3, 4, 5, 6, 7}), total]
    if c.unpriced_models:
        lines.append(f"unpriced models (not counted in the total): {', '.join(c.unpriced_models)}")
    if c.approximate_calls:
        lines.append(
            f"~: approximate: {c.approximate_calls} call{'' if c.approximate_calls == 1 else 's'} "
            "came back without usage; counted locally with tiktoken"
        )
    items = sum(s.kept_calls for s in result.steps.values())
    if result.kept_steps or items:
        steps = sum(len(result.steps[s].replied_calls) for s in result.kept_steps)
        made = c.calls - steps - items
        parts = []
        if result.kept_steps:
            n = len(result.kept_steps)
            parts.append(
                f"{n} step{'' if n == 1 else 's'} kept from before ({', '.join(result.kept_steps)};"
                f" {steps} call{'' if steps == 1 else 's'} in the total above)"
            )
        if items:
            parts.append(
                f"{items} call{'' if items == 1 else 's'} of foreach items answered before kept"
                " (in the total above)"
            )
        lines.append(
            f"resumed: {', '.join(parts)}; this resume made {made} call{'' if made == 1 else 's'}"
        )
    if result.earlier_usd:
        lines.append(
            f"earlier attempts of the steps run again: {usd_text(result.earlier_usd)}, paid"
            f" before this resume (not in the total above; `flowrun runs show {result.run_id}`"
            " counts it)"
        )
    for warning in result.warnings:
        lines.append(f"warning: {warning}")
    lines.append(f"run {result.run_id} {result.status} in {result.duration_s:.2f}s")
    return "\n".join(lines)


def _total_usd(c: Any) -> str:
    """A total is unknown when a call in it is: "unpriced", with the priced part beside it."""
    if c.mock_calls:
        return "no dollars (mock run: --mock's fake model answered)"
    if c.unpriced_models:
        return f"unpriced (${c.total_usd:.6f} for the priced calls)"
    return ("~" if c.approximate_calls else "") + f"${c.total_usd:.6f}"


def _step_cost(step: Any) -> str:
    if not step.replied_calls:
        return "-"
    if step.mock:
        return "mock"
    if step.cached:
        return "$0 (cache hit)"  # flowrun's response cache, not the prompt cache
    return ("~" if step.approximate else "") + _usd(step.known_cost_usd)


def format_estimate(est: Estimate) -> str:
    rows = [["step", "type", "model", "calls", "prompt", "max output", "worst case", "note"]]
    for sid, s in est.steps.items():
        prompt = ("≥" if s.lower_bound else "") + ("~" if not est.exact_tokens else "")
        prompt += str(s.prompt_tokens)
        rows.append(
            [
                sid,
                s.type,
                s.model or "-",
                str(s.calls),
                prompt,
                "unbounded" if s.unbounded else str(s.max_completion_tokens),
                "unbounded" if s.unbounded else _usd(s.worst_case_usd),
                s.note,
            ]
        )
    total = f"total worst case: ${est.total_usd:.6f}"
    if est.unbounded_steps:
        steps = ", ".join(est.unbounded_steps)
        total = f"total worst case: unbounded (no output limit known for: {steps})"
    lines = [table(rows, right={3, 4, 5, 6}), total]
    if est.unpriced_models:
        lines.append(
            f"unpriced models (not counted in the total): {', '.join(est.unpriced_models)}"
        )
    if any(s.lower_bound for s in est.steps.values()):
        lines.append("≥: the prompt includes earlier steps' outputs, unknown before a run")
    if not est.exact_tokens:
        lines.append("~: approximate counts (the tiktoken encodings could not be loaded)")
    return "\n".join(lines)


def format_run_row(row: Any, steps: dict[str, Any]) -> str:
    """``flowrun runs show``: the run's header, its steps, outputs and error."""
    lines = [
        f"run {row.id}: {row.workflow_name} ({row.workflow_path or 'inline'})",
        f"status: {row.status}   started {row.started_at}   ended {row.ended_at or '-'}   cost {usd_text(None if row.cost_note else row.cost_usd, row.cost_note)}",
        f"inputs: {json.dumps(row.inputs, ensure_ascii=False)[:300]}",
    ]
    if steps:
        rows = [["step", "status", "model", "calls", "cost", "time", "error"]]
        for sid, s in steps.items():
            rows.append(
                [
                    sid,
                    s.status,
                    s.model or "-",
                    str(len(s.replied_calls)),
                    _step_cost(s),
                    f"{s.duration_s:.2f}s",
                    (s.error or "")[:80],
                ]
            )
        lines.append(table(rows, right={3, 4, 5}))
    if row.outputs:
        lines.append(format_outputs(row.outputs))
    if row.error:
        lines.append(f"error: {row.error}")
    return "\n".join(lines)


def metric_text(metrics: dict[str, Any]) -> str:
    """``accuracy=0.75, grade="A"``: a run's or a batch's metrics on one line."""
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in metrics.items())
