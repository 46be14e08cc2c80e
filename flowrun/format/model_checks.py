"""Checks of model steps against the model table (``flowrun/provider/data/models.json``).

Parameters a model refuses (on the step or inherited from ``defaults``), output limits,
images, system messages and embedding dimensions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowrun.format.spec import ChatStep, EmbedStep, ExtractStep, Workflow
from flowrun.provider.catalog import DEFAULT_EMBED_MODEL, ModelInfo, checked_model_info, model_info


class ModelChecks:
    """Reports through ``add(path, message, key=False)``, as the other checks do."""

    def __init__(self, spec: Workflow, add: Callable[..., None]) -> None:
        self.spec = spec
        self.add = add

    def run(self) -> None:
        """Check every model step (a chat/extract step needs a model somewhere)."""
        defaults = self.spec.defaults
        reported: set[tuple[str, str]] = set()
        for sid, step in self.spec.steps.items():
            base = ("steps", sid)
            if isinstance(step, EmbedStep):
                self.check_embed_model(sid, step)
                continue
            if not isinstance(step, (ChatStep, ExtractStep)):
                continue
            model = step.model or defaults.model
            if not model:
                self.add(
                    base,
                    f"step '{sid}' has no model: set model: on the step or under defaults:",
                    key=True,
                )
                continue
            info = checked_model_info(model)
            if info is None:
                continue
            where_model = base + ("model",) if step.model else ("defaults", "model")
            if info.embedding:
                self.add(
                    where_model,
                    f"step '{sid}': {model} is an embedding model; use a step of type embed",
                )
            self.check_parameters(sid, step, model, info, reported)
            max_out = step.max_completion_tokens or defaults.max_completion_tokens
            if max_out and info.max_output_tokens and max_out > info.max_output_tokens:
                where = (
                    base + ("max_completion_tokens",)
                    if step.max_completion_tokens
                    else ("defaults", "max_completion_tokens")
                )
                self.add(
                    where,
                    f"step '{sid}': max_completion_tokens {max_out} is more than {model} can "
                    f"produce ({info.max_output_tokens}); lower it to at most {info.max_output_tokens}",
                )
            if step.images and not info.vision:
                self.add(
                    base + ("images",),
                    f"step '{sid}': {model} does not accept images; use a vision model (e.g. gpt-4o-mini)",
                )
            if not info.system_messages:
                self.check_no_system_messages(sid, step, model)

    def check_parameters(
        self, sid: str, step: Any, model: str, info: ModelInfo, reported: set[tuple[str, str]]
    ) -> None:
        """Parameters the model refuses, set on the step or (once) under defaults."""
        defaults = self.spec.defaults
        rejected = ["temperature", "top_p"] if info.reasoning else ["reasoning_effort"]
        rejected += [p for p in info.rejects if p not in rejected]
        for param in rejected:
            if param in info.rejects:
                why, fix = f"does not accept {param}", "remove it"
            elif info.reasoning:
                why = f"is a reasoning model and rejects {param}"
                fix = "remove it (use reasoning_effort instead)"
                if "reasoning_effort" in info.rejects:
                    fix = "remove it"
            else:
                why, fix = f"is not a reasoning model and rejects {param}", "remove it"
            if getattr(step, param) is not None:
                self.add(("steps", sid, param), f"step '{sid}': {model} {why}; {fix}")
            elif getattr(defaults, param) is not None and ("defaults", param) not in reported:
                reported.add(("defaults", param))
                self.add(
                    ("defaults", param),
                    f"defaults: {param} applies to step '{sid}', but {model} {why}; {fix}",
                )

    def check_no_system_messages(self, sid: str, step: Any, model: str) -> None:
        fix = "put these instructions in the prompt (a user message)"
        if step.system is not None:
            self.add(
                ("steps", sid, "system"),
                f"step '{sid}': {model} does not accept system messages; {fix}",
            )
        for i, message in enumerate(step.messages or []):
            if message.role in ("system", "developer"):
                self.add(
                    ("steps", sid, "messages", i, "role"),
                    f"step '{sid}': {model} does not accept {message.role} messages; {fix}",
                )

    def check_embed_model(self, sid: str, step: EmbedStep) -> None:
        info = model_info(step.model or DEFAULT_EMBED_MODEL)
        if not step.dimensions or info is None:
            return
        where = ("steps", sid, "dimensions")
        if info.name == "text-embedding-ada-002":
            self.add(
                where,
                f"step '{sid}': {info.name} does not accept dimensions; remove it or "
                "use text-embedding-3-small or text-embedding-3-large",
            )
        elif info.dimensions and step.dimensions > info.dimensions:
            self.add(
                where,
                f"step '{sid}': dimensions {step.dimensions} is more than {info.name} gives "
                f"({info.dimensions}); lower it to at most {info.dimensions}",
            )
