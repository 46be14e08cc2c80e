"""Replies checked against what was asked, so a server that differs from OpenAI is caught.

- ``check_cap``: a reply with more completion tokens than the cap that was sent means the
  server ignored the cap parameter (llama.cpp's server knows only ``max_tokens``): a warning
  saying so, and which server setting fixes it.
- ``check_vectors``: an embeddings reply must hold one vector per input, each of the
  requested ``dimensions`` (and all of one length): else the step fails, naming the server.
"""

from __future__ import annotations

from typing import Any

from flowrun.engine.step_record import CallSite
from flowrun.errors import StepError


def server_label(env: CallSite) -> str:
    """``server 'NAME'`` for a step on a named server, else the server OPENAI_BASE_URL names."""
    name = env.setting("server")
    return f"server '{name}'" if name else "the server (OPENAI_BASE_URL)"


def check_cap(
    env: CallSite, request: dict[str, Any], reply: Any, param: str = "max_completion_tokens"
) -> None:
    """Warn when the reply passed the cap that was sent as ``param`` (the server ignored it)."""
    cap = request.get("max_completion_tokens")
    used = reply.usage.completion_tokens
    if not cap or used <= cap:
        return
    who = server_label(env)
    name = env.setting("server")
    if param == "max_completion_tokens":
        fix = (
            f"set max_tokens_param: max_tokens on server '{name}'"
            if name
            else "name the server under servers: with max_tokens_param: max_tokens and set "
            "server: on the step (or in defaults)"
        )
    else:
        fix = "the server ignores max_tokens too: check its own output limit setting"
    env.warn(
        f"step '{env.label}': the reply has {used:,} completion tokens, more than the cap of "
        f"{cap:,} sent as {param}: {who} ignored it; {fix}"
    )


def check_vectors(env: CallSite, request: dict[str, Any], reply: Any, inputs: int) -> None:
    """One vector per input, of the requested length: else a ``StepError`` naming the server."""
    vectors = reply.vectors
    who = server_label(env)
    if len(vectors) != inputs:
        raise StepError(
            f"{who} returned {len(vectors):,} embedding vectors for {inputs:,} "
            f"input{'s' if inputs != 1 else ''}; a server that returns one vector per token "
            "serves a model without pooling: use an embedding model (llama.cpp: a model with "
            "pooling, e.g. --pooling mean)"
        )
    if any(v and not isinstance(v[0], (int, float)) for v in vectors):
        raise StepError(
            f"{who} returned a list of vectors (one per token) for each input, not one vector; "
            "it serves a model without pooling: use an embedding model (llama.cpp: a model "
            "with pooling, e.g. --pooling mean)"
        )
    lengths = sorted({len(v) for v in vectors})
    dimensions = request.get("dimensions")
    if dimensions and lengths != [dimensions]:
        raise StepError(
            f"{who} returned vectors of length {', '.join(map(str, lengths))} for dimensions "
            f"{dimensions}: it ignores dimensions; remove dimensions from the step or use a "
            "model that supports it"
        )
    if len(lengths) > 1:
        raise StepError(
            f"{who} returned vectors of different lengths ({', '.join(map(str, lengths))})"
        )
