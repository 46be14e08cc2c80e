"""``flowrun estimate``: render every prompt without calling a model; count tokens; price the worst case.

Outputs of earlier steps are unknown before a run, so templates see a placeholder for them
(rendered as ``<steps.X.output>``) and the count is a lower bound for such prompts; the
report marks those steps. A foreach over a list that depends on another step counts one item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .catalog import DEFAULT_EMBED_MODEL, model_info
from .errors import StepFailed
from .executor import is_truthy
from .graph import topological_index
from .inputs import resolve_inputs
from .loader import LoadedWorkflow
from .pricing import PriceTable, load_price_table
from .runtime import Services
from .steps.base import StepEnv, StepError, StepRecord
from .templating import TemplateError, render
from .tools import Toolbox


class Placeholder(str):
    """Stands for a value only a run would know; any attribute or item is another placeholder."""

    def __new__(cls, name: str) -> Placeholder:
        return super().__new__(cls, f"<{name}>")

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return Placeholder(f"{self[1:-1]}.{name}")

    def __getitem__(self, key: Any) -> Placeholder:  # type: ignore[override]
        return Placeholder(f"{self[1:-1]}[{key!r}]")

    def __iter__(self):  # type: ignore[override]
        return iter([Placeholder(f"{self[1:-1]}[0]")])


@dataclass
class StepEstimate:
    id: str
    type: str
    model: str | None = None
    prompt_tokens: int = 0
    max_completion_tokens: int = 0
    calls: int = 1
    worst_case_usd: float | None = 0.0
    lower_bound: bool = False
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "model": self.model,
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "max_completion_tokens": self.max_completion_tokens,
            "worst_case_usd": None
            if self.worst_case_usd is None
            else round(self.worst_case_usd, 8),
            "lower_bound": self.lower_bound,
            "note": self.note,
        }


@dataclass
class Estimate:
    steps: dict[str, StepEstimate] = field(default_factory=dict)
    exact_tokens: bool = True

    @property
    def total_usd(self) -> float:
        return sum(s.worst_case_usd or 0.0 for s in self.steps.values())

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(
            {s.model for s in self.steps.values() if s.worst_case_usd is None and s.model}
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": {sid: s.to_json() for sid, s in self.steps.items()},
            "total_worst_case_usd": round(self.total_usd, 8),
            "unpriced_models": self.unpriced_models,
            "exact_tokens": self.exact_tokens,
        }


def estimate_workflow(
    wf: LoadedWorkflow, inputs: dict[str, Any] | None = None, *, prices: PriceTable | None = None
) -> Estimate:
    """Worst-case tokens and dollars per step, without calling any model."""
    from . import tokens
    from .steps.chat import chat_request
    from .steps.extract import extract_request
    from .steps.messages import build_messages

    prices = prices or load_price_table()
    values = resolve_inputs(wf.spec, inputs)
    services = Services(prices=prices, toolbox=Toolbox.from_workflow(wf), dry_run=True)
    steps_view = {sid: _placeholder_view(sid) for sid in wf.spec.steps}
    scope = {"inputs": values, "steps": steps_view}
    report = Estimate(exact_tokens=tokens.encodings_available())
    order = topological_index(wf.graph)
    for sid in sorted(wf.spec.steps, key=lambda s: order.get(s, 0)):
        step = wf.spec.steps[sid]
        est = StepEstimate(id=sid, type=step.type, lower_bound=bool(wf.dependencies.get(sid)))
        report.steps[sid] = est
        if step.type == "tool":
            est.calls, est.worst_case_usd, est.note = 0, 0.0, "no model call"
            continue
        try:
            items = [None]
            if step.foreach is not None:
                rendered = render(step.foreach, scope)
                if isinstance(rendered, Placeholder):
                    est.note = "foreach over a step's output: counted for 1 item"
                elif isinstance(rendered, (list, tuple, dict)):
                    items = list(rendered) or []
            condition = render(step.when, scope) if step.when is not None else True
            if not isinstance(condition, Placeholder) and not is_truthy(condition):
                est.note = "skipped: when is false for these inputs"
                est.calls, est.worst_case_usd = 0, 0.0
                continue
            est.calls = len(items)
            for index, item in enumerate(items):
                item_scope = {
                    **scope,
                    "item": Placeholder("item") if item is None else item,
                    "index": index,
                }
                env = StepEnv(sid, step, wf, item_scope, services, StepRecord(), index)
                if step.type == "embed":
                    est.model = step.model or DEFAULT_EMBED_MODEL
                    value = render(step.input, item_scope)
                    texts = [value] if isinstance(value, str) else [str(v) for v in value]
                    est.prompt_tokens += sum(tokens.count_text(t, est.model) for t in texts)
                    continue
                est.model = env.setting("model")
                messages = build_messages(env)
                if step.type == "chat":
                    request = chat_request(env, messages)
                else:
                    request = extract_request(env, messages, wf.schemas[(sid, "schema")])
                est.prompt_tokens += tokens.count_request(request, est.model)
                info = model_info(est.model)
                est.max_completion_tokens += env.setting("max_completion_tokens") or (
                    info.max_output_tokens if info else 0
                )
        except (TemplateError, StepError) as exc:
            raise StepFailed(sid, str(exc)) from None
        repeats = (step.max_repairs + 1) if step.type == "extract" else 1
        cost = (
            prices.worst_case(est.model, est.prompt_tokens, est.max_completion_tokens)
            if est.model
            else None
        )
        est.worst_case_usd = None if cost is None else cost * repeats
        if repeats > 1:
            est.note = (
                est.note + "; " if est.note else ""
            ) + f"includes {repeats - 1} possible repair(s)"
    return report


def _placeholder_view(sid: str) -> dict[str, Any]:
    return {
        "output": Placeholder(f"steps.{sid}.output"),
        "usage": {},
        "finish_reason": "stop",
        "skipped": False,
        "status": "succeeded",
        "tool_calls": [],
        "cost_usd": 0.0,
        "model": None,
    }
