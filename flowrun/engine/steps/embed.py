"""The ``embed`` step: one string -> one vector, a list -> a list of vectors, in input order."""

from __future__ import annotations

import asyncio
from typing import Any

from flowrun.engine.steps.base import StepEnv, StepError
from flowrun.format.templating import render
from flowrun.provider.catalog import DEFAULT_EMBED_MODEL

MAX_INPUTS_PER_REQUEST = 2048  # the embeddings endpoint's limit on inputs per request


async def run_embed(env: StepEnv) -> Any:
    step = env.step
    value = render(step.input, env.scope)
    single = isinstance(value, str)
    texts = [value] if single else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise StepError(f"input must be a string or a list of strings, got {type(value).__name__}")
    if not texts:
        return []
    if any(t == "" for t in texts):
        raise StepError("input contains an empty string, which the embeddings API rejects")
    model = step.model or DEFAULT_EMBED_MODEL
    base: dict[str, Any] = {"model": model, "encoding_format": "float"}
    if step.dimensions:
        base["dimensions"] = step.dimensions
    if step.extra:
        base["extra"] = step.extra
    chunks = [
        texts[i : i + MAX_INPUTS_PER_REQUEST] for i in range(0, len(texts), MAX_INPUTS_PER_REQUEST)
    ]
    replies = await asyncio.gather(
        *(env.services.embed(env, {**base, "input": chunk}) for chunk in chunks)
    )
    vectors = [v for reply in replies for v in reply.vectors]
    return vectors[0] if single else vectors
