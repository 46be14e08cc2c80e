"""Conversation memory for ``chat`` steps with ``thread:``, kept in the run store (no Assistants API).

A thread is the list of turns recorded under one key (the rendered ``thread:`` template): each
turn is the step's new messages (its ``messages:`` and ``prompt``) followed by the model's final
reply. A call on a thread sends the step's leading system/developer messages, then the earlier
turns, then the new turn. When that does not fit the model's context window (counted with
tiktoken, leaving room for ``max_completion_tokens``), the oldest turns are dropped first; the
store keeps them all (``flowrun threads show``). Models missing from the model table have no
known window, so their threads are sent whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowrun.engine.steps.base import StepEnv, StepError
from flowrun.format.templating import render_text
from flowrun.provider.catalog import model_info
from flowrun.provider.tokens import TOKENS_PER_REPLY, count_messages

LEADING_ROLES = ("system", "developer")


@dataclass
class Thread:
    """One call's view of a thread: what it sent from history, and the turn it will add."""

    key: str
    store: Any
    turn: list[dict[str, Any]]
    sent: int  # earlier messages sent with this call
    dropped: int  # earlier messages left out to fit the context window

    def remember(self, reply: str) -> None:
        """Append this call's turn and the model's reply to the thread, with the run's id."""
        from flowrun.engine.services import CURRENT_RUN_ID

        turn = [*self.turn, {"role": "assistant", "content": reply}]
        self.store.append_thread(self.key, turn, CURRENT_RUN_ID.get())


def open_thread(env: StepEnv, request: dict[str, Any]) -> Thread:
    """Insert the thread's earlier turns into ``request['messages']`` (in place), trimmed to fit."""
    store = env.services.threads
    if store is None:
        raise StepError("thread: needs the run store (it was turned off with store=False)")
    key = render_text(env.step.thread, env.scope).strip()
    if not key:
        raise StepError("thread: rendered to an empty key")
    messages = request["messages"]
    head = 0
    while head < len(messages) and messages[head].get("role") in LEADING_ROLES:
        head += 1
    turn = [dict(m) for m in messages[head:]]
    history = store.thread_messages(key)
    kept = fit_history(history, request)
    messages[head:head] = kept
    return Thread(key, store, turn, sent=len(kept), dropped=len(history) - len(kept))


def fit_history(history: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
    """The newest whole turns of ``history`` that fit in the request's context window."""
    model = request["model"]
    info = model_info(model)
    if info is None or not history:
        return history
    reserve = request.get("max_completion_tokens") or info.max_output_tokens
    room = info.context_window - reserve
    total = count_messages(request["messages"], model, request.get("tools"))
    sizes = [count_messages([m], model) - TOKENS_PER_REPLY for m in history]
    total += sum(sizes)
    start = 0
    while total > room and start < len(history):
        end = start + 1  # drop one whole turn: up to the next user message
        while end < len(history) and history[end].get("role") != "user":
            end += 1
        total -= sum(sizes[start:end])
        start = end
    return history[start:]
