"""The items of a ``foreach`` step: each is durable the moment it completes.

Every item runs with its own ``StepRecord`` (its calls, tool calls, transcript), merged into
the step's record when the item ends, however it ends (a failed or cancelled item's calls
were paid for too). A finished item is handed to the recorder (``item_finished``: the run
store commits it at once) with a key of what it was computed from: the step as written, the
item, the run's inputs and the outputs of the steps it depends on. A run of the same step
that finds a stored item with the same key (a resume after Ctrl-C, SIGTERM, ``kill -9`` or a
failed item) reuses it instead of asking the model again; a key that differs (the step, an
input or an upstream output changed) runs the item afresh.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flowrun.engine.step_record import StepRecord
from flowrun.format.graph import ancestors
from flowrun.format.loader import LoadedWorkflow
from flowrun.results import CallRecord


def item_key(wf: LoadedWorkflow, sid: str, item: Any, index: int, scope: dict[str, Any]) -> str:
    """What item ``index`` of step ``sid`` was computed from, as a hash."""
    step = wf.spec.steps[sid]
    upstream = sorted(ancestors(wf.dependencies, sid))  # (without loading networkx)
    views = scope.get("steps", {})
    basis = {
        "step": step.model_dump(mode="json", by_alias=True),
        "index": index,
        "item": item,
        "inputs": scope.get("inputs"),
        "upstream": {u: (views.get(u) or {}).get("output") for u in upstream},
    }
    text = json.dumps(basis, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def item_record(output: Any, sub: StepRecord) -> dict[str, Any]:
    """A finished item as the run store keeps it."""
    return {
        "output": output,
        "model": sub.model,
        "calls": [c.to_dict() for c in sub.calls],
        "tool_calls": sub.tool_calls,
        "warnings": sub.warnings,
        "finish_reason": sub.finish_reason,
        "transcript": sub.transcript,
    }


def restored(stored: dict[str, Any]) -> tuple[Any, StepRecord]:
    """A stored item's output, and its record (its calls, paid before) to merge."""
    sub = StepRecord(
        calls=[CallRecord.from_dict(c) for c in stored.get("calls") or []],
        tool_calls=list(stored.get("tool_calls") or []),
        warnings=list(stored.get("warnings") or []),
        finish_reason=stored.get("finish_reason"),
        model=stored.get("model"),
        transcript=list(stored.get("transcript") or []),
    )
    return stored.get("output"), sub


def merge(record: StepRecord, sub: StepRecord) -> None:
    """Add an item's record to its step's."""
    record.calls.extend(sub.calls)
    record.tool_calls.extend(sub.tool_calls)
    record.transcript.extend(sub.transcript)
    for warning in sub.warnings:
        if warning not in record.warnings:
            record.warnings.append(warning)
    record.finish_reason = sub.finish_reason or record.finish_reason
    record.model = sub.model or record.model
