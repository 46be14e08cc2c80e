"""``flowrun estimate``: render every prompt without calling a model; count tokens; price the worst case.

Outputs of earlier steps are unknown before a run, so templates see a placeholder for them
(rendered as ``<steps.X.output>``) and the count is a lower bound for such prompts; the
report marks those steps. A foreach over a list that depends on another step counts one item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowrun.engine.executor import is_truthy
from flowrun.engine.services import Services
from flowrun.engine.steps.base import StepEnv, StepError, StepRecord
from flowrun.engine.steps.messages import ImageFileError, build_messages
from flowrun.engine.tools import Toolbox
from flowrun.errors import StepFailed, UsageError
from flowrun.format.inputs import resolve_inputs
from flowrun.format.loader import LoadedWorkflow
from flowrun.format.templating import TemplateError, render
from flowrun.provider.catalog import DEFAULT_EMBED_MODEL, model_info
from flowrun.provider.pricing import PriceTable, load_price_table


class Placeholder(str):
    """Stands for a value only a run would know; any attribute or item is another placeholder."""

    def __new__(cls, name: str) -> Placeholder:
        return super().__new__(cls, f"<{name}>")

    @property
    def _name(self) -> str:
        # str's own slicing: ``self[1:-1]`` would be this class's __getitem__, a placeholder
        return str.__getitem__(self, slice(1, -1))

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return Placeholder(f"{self._name}.{name}")

    def __getitem__(self, key: Any) -> Placeholder:  # type: ignore[override]
        return Placeholder(f"{self._name}[{key!r}]")

    def __iter__(self):  # type: ignore[override]
        return iter([Placeholder(f"{self._name}[0]")])

    # A comparison with an unknown value is unknown: ``when: steps.x.output.rate > 0.05`` is
    # counted as a step that may run, and ``{% if %}`` on it renders its (longer) body.
    def _compared(self, op: str, other: Any) -> Placeholder:
        return Placeholder(f"{self._name} {op} {other!r}")

    def __lt__(self, other: Any) -> Placeholder:  # type: ignore[override]
        return self._compared("<", other)

    def __le__(self, other: Any) -> Placeholder:  # type: ignore[override]
        return self._compared("<=", other)

    def __gt__(self, other: Any) -> Placeholder:  # type: ignore[override]
        return self._compared(">", other)

    def __ge__(self, other: Any) -> Placeholder:  # type: ignore[override]
        return self._compared(">=", other)

    # Arithmetic on an unknown value is unknown too (``output.rate * 100``: not "<...>" * 100).
    def __add__(self, other: Any) -> Placeholder:  # type: ignore[override]
        if isinstance(other, str):
            return Placeholder(self._name + other)
        return self._compared("+", other)

    def __mul__(self, other: Any) -> Placeholder:  # type: ignore[override]
        return self._compared("*", other)

    def _arith(op: str) -> Any:  # builds the methods below; deleted after
        def method(self: Placeholder, other: Any) -> Placeholder:
            return self._compared(op, other)

        return method

    __radd__ = __rmul__ = __rmod__ = _arith("?")
    __sub__ = __rsub__ = __truediv__ = __rtruediv__ = __floordiv__ = __pow__ = _arith("?")
    __mod__ = _arith("%")
    del _arith

    def __round__(self, ndigits: int | None = None) -> Placeholder:
        return self

    def __neg__(self) -> Placeholder:
        return self

    __abs__ = __neg__
    __hash__ = str.__hash__


@dataclass
class StepEstimate:
    """One step's worst case. ``unbounded``: no output limit is known, so neither is its cost."""

    id: str
    type: str
    model: str | None = None
    server: str | None = None  # the named server the step calls
    prompt_tokens: int = 0
    max_completion_tokens: int = 0
    calls: int = 1
    worst_case_usd: float | None = 0.0
    lower_bound: bool = False
    note: str = ""
    unpriced: bool = False
    unbounded: bool = False
    over_context_window: bool = False

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "model": self.model,
            **({"server": self.server} if self.server else {}),
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "max_completion_tokens": None if self.unbounded else self.max_completion_tokens,
            "worst_case_usd": None
            if self.worst_case_usd is None
            else round(self.worst_case_usd, 8),
            "lower_bound": self.lower_bound,
            "unbounded": self.unbounded,
            "over_context_window": self.over_context_window,
            "note": self.note,
        }


@dataclass
class Estimate:
    steps: dict[str, StepEstimate] = field(default_factory=dict)
    exact_tokens: bool = True

    @property
    def total_usd(self) -> float:
        """The priced, bounded steps' worst cases (see ``unbounded_steps`` and ``unpriced_models``)."""
        return sum(s.worst_case_usd or 0.0 for s in self.steps.values())

    @property
    def unbounded_steps(self) -> list[str]:
        return [sid for sid, s in self.steps.items() if s.unbounded]

    @property
    def unpriced_models(self) -> list[str]:
        return sorted({s.model for s in self.steps.values() if s.unpriced and s.model})

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": {sid: s.to_json() for sid, s in self.steps.items()},
            "total_worst_case_usd": None if self.unbounded_steps else round(self.total_usd, 8),
            "unbounded_steps": self.unbounded_steps,
            "unpriced_models": self.unpriced_models,
            "exact_tokens": self.exact_tokens,
        }


def estimate_workflow(
    wf: LoadedWorkflow, inputs: dict[str, Any] | None = None, *, prices: PriceTable | None = None
) -> Estimate:
    """Worst-case tokens and dollars per step, without calling any model.

    Invalid inputs and missing or non-image local files raise ``UsageError``.
    """
    from flowrun.engine.servers import price_tables, step_prices
    from flowrun.format.server_checks import step_server
    from flowrun.provider import tokens

    prices = prices or load_price_table()
    tables = price_tables(wf, prices)  # each named server's prices
    values = resolve_inputs(wf.spec, inputs)
    services = Services(
        client=_NoCalls(), prices=prices, toolbox=Toolbox.from_workflow(wf), dry_run=True
    )
    steps_view = {sid: _placeholder_view(sid) for sid in wf.spec.steps}
    scope = {"inputs": values, "steps": steps_view}
    report = Estimate(exact_tokens=tokens.encodings_available())
    order = wf.order.index
    for sid in sorted(wf.spec.steps, key=lambda s: order.get(s, 0)):
        step = wf.spec.steps[sid]
        est = StepEstimate(id=sid, type=step.type, lower_bound=bool(wf.dependencies.get(sid)))
        report.steps[sid] = est
        if step.type == "tool":
            est.calls, est.worst_case_usd, est.note = 0, 0.0, "no model call"
            continue
        try:
            counted = _count_step(wf, sid, step, scope, services, est)
        except ImageFileError as exc:
            raise UsageError(f"step '{sid}' failed: {exc}") from None
        except (TemplateError, StepError) as exc:
            raise StepFailed(sid, str(exc)) from None
        est.server = step_server(wf, sid)
        if counted:
            _price_step(est, step, step_prices(wf, sid, prices, tables))
    return report


def _count_step(
    wf: LoadedWorkflow,
    sid: str,
    step: Any,
    scope: dict[str, Any],
    services: Services,
    est: StepEstimate,
) -> bool:
    """Count a model step's tokens into ``est``; False when ``when`` skips it."""
    items: list[Any] = [None]
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
        return False
    est.calls = len(items)
    for index, item in enumerate(items):
        item_scope = {
            **scope,
            "item": Placeholder("item") if item is None else item,
            "index": index,
        }
        env = StepEnv(sid, step, wf, item_scope, services, StepRecord(), index)
        if step.type == "embed":
            _count_embed(env, est)
        else:
            _count_chat(env, est)
    return True


def _count_embed(env: StepEnv, est: StepEstimate) -> None:
    from flowrun.provider.tokens import count_text

    est.model = env.step.model or DEFAULT_EMBED_MODEL
    value = render(env.step.input, env.scope)
    texts = [value] if isinstance(value, str) else [str(v) for v in value]
    counts = [count_text(t, est.model) for t in texts]
    est.prompt_tokens += sum(counts)
    info = model_info(est.model)
    if info and info.embedding and any(n > info.context_window for n in counts):
        _mark_over(est, f"{est.model}'s limit of {info.context_window:,} tokens per input")


def _count_chat(env: StepEnv, est: StepEstimate) -> None:
    from flowrun.engine.steps.chat import chat_request
    from flowrun.engine.steps.extract import extract_request
    from flowrun.provider.tokens import count_request

    step = env.step
    est.model = env.setting("model")
    messages = build_messages(env)
    if step.type == "chat":
        request = chat_request(env, messages)
    else:
        request = extract_request(env, messages, env.workflow.schemas[(env.step_id, "schema")])
    prompt = count_request(request, est.model)
    est.prompt_tokens += prompt
    info = model_info(est.model)
    explicit = env.setting("max_completion_tokens")
    limit = explicit or (info.max_output_tokens if info else 0)
    if not limit:
        est.unbounded = True
    est.max_completion_tokens += limit
    if info and prompt + (explicit or 0) > info.context_window:
        _mark_over(est, f"{est.model}'s context window of {info.context_window:,} tokens")


def _mark_over(est: StepEstimate, limit: str) -> None:
    """Note (once) that a prompt passes ``limit``: run refuses it, or may, on approximate counts."""
    from flowrun.provider.tokens import counts_exact

    if est.over_context_window:
        return
    est.over_context_window = True
    if counts_exact(est.model):
        est.add_note(f"over {limit}: run would refuse it")
    else:
        est.add_note(f"may be over {limit} (approximate count)")


def _price_step(est: StepEstimate, step: Any, prices: PriceTable) -> None:
    """The step's worst-case dollars: every call at its full output limit, repairs included."""
    repeats = (step.max_repairs + 1) if step.type == "extract" else 1
    cost = (
        prices.worst_case(est.model, est.prompt_tokens, est.max_completion_tokens)
        if est.model
        else None
    )
    est.unpriced = cost is None
    est.worst_case_usd = None if cost is None or est.unbounded else cost * repeats
    if est.unbounded:
        est.add_note(
            f"no output limit known for {est.model}: the cost is unbounded; "
            "set max_completion_tokens"
        )
    if repeats > 1:
        est.add_note(f"includes {repeats - 1} possible repair(s)")


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


class _NoCalls:
    """The model client of an estimate: requests are built, never sent."""

    async def chat(self, request: dict[str, Any], **options: Any) -> Any:
        raise AssertionError("an estimate makes no model call")

    async def embed(self, request: dict[str, Any], **options: Any) -> Any:
        raise AssertionError("an estimate makes no model call")

    async def aclose(self) -> None:
        return None
