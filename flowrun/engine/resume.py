"""Deciding how to resume a run: which steps are kept, and whether the workflow changed under them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowrun.errors import UsageError, WorkflowInvalid
from flowrun.format.loader import LoadedWorkflow, load_workflow, load_workflow_text
from flowrun.results import StepResult


@dataclass
class ResumePlan:
    run_id: str
    workflow: LoadedWorkflow
    inputs: dict[str, Any]
    completed: dict[str, StepResult]
    options: dict[str, Any]
    #: the stored steps the resume runs again (failed ones): their rows are replaced
    rerun: list[str]


def plan_resume(store: Any, run_id: str, *, force: bool = False) -> ResumePlan:
    """Load a stored run and the current workflow file; refuse if completed steps changed."""
    row = store.get_run(run_id)
    if row.status == "succeeded":
        raise UsageError(f"run {row.id} already succeeded; nothing to resume")
    if row.status == "running" and row.process_alive and not force:
        raise UsageError(
            f"run {row.id} is still running (pid {row.pid}); wait for it or stop it "
            "(force=True resumes anyway, if that process is not this run)"
        )
    if not row.workflow_path or not Path(row.workflow_path).exists():
        raise UsageError(
            f"the workflow file of run {row.id} ({row.workflow_path}) no longer exists"
        )
    current = load_workflow(row.workflow_path)
    stored = store.load_steps(row.id)
    completed = {
        sid: r
        for sid, r in stored.items()
        if r.status in ("succeeded", "skipped") and sid in current.spec.steps
    }
    if current.content_hash != row.workflow_hash and not force:
        changed = changed_completed_steps(row.workflow_text, current, completed)
        if changed:
            raise UsageError(
                f"the workflow {row.workflow_path} changed since run {row.id} in ways that affect completed "
                f"step(s) {', '.join(changed)}; run it afresh, or resume with force=True to keep their old results"
            )
    rerun = [sid for sid in stored if sid in current.spec.steps and sid not in completed]
    return ResumePlan(row.id, current, row.inputs, completed, row.options, rerun)


def changed_completed_steps(
    old_text: str, current: LoadedWorkflow, completed: dict[str, StepResult]
) -> list[str]:
    """Completed steps whose definition, or an ancestor's, or the inputs/defaults, differ."""
    import networkx as nx  # (here: a batch asks at every start, and most have nothing kept)

    try:
        old = load_workflow_text(old_text, base_dir=current.base_dir)
    except WorkflowInvalid:
        return sorted(completed)
    shared_changed = _dump(old.spec.inputs) != _dump(current.spec.inputs) or _dump(
        old.spec.defaults
    ) != _dump(current.spec.defaults)
    changed = []
    for sid in completed:
        lineage = {sid} | nx.ancestors(current.graph, sid)
        if shared_changed or any(
            sid_ not in old.spec.steps or _definition(old, sid_) != _definition(current, sid_)
            for sid_ in lineage
        ):
            changed.append(sid)
    return sorted(changed)


def _definition(wf: LoadedWorkflow, sid: str) -> str:
    """A step as it was written, with the definitions of the tools it may call."""
    step = wf.spec.steps[sid]
    tools = {name: wf.spec.tools.get(name) for name in getattr(step, "tools", None) or []}
    return _dump(step) + _dump(tools)


def _dump(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps({k: _dump(v) for k, v in value.items()}, sort_keys=True)
    if value is None:
        return "null"
    return json.dumps(value.model_dump(mode="json", by_alias=True), sort_keys=True)
