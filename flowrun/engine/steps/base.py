"""What a step runner gets: its spec, the template scope and the run's services.

(``StepRecord`` and ``StepError`` are re-exported here for the step modules.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowrun.engine.step_record import StepRecord
from flowrun.errors import StepError

if TYPE_CHECKING:
    from flowrun.engine.services import Services
    from flowrun.format.loader import LoadedWorkflow


__all__ = ["MODEL_PARAMS", "StepEnv", "StepError", "StepRecord"]

MODEL_PARAMS = ("temperature", "top_p", "max_completion_tokens", "seed", "stop", "reasoning_effort")


@dataclass
class StepEnv:
    """One execution of a step (or of one foreach item)."""

    step_id: str
    step: Any
    workflow: LoadedWorkflow
    scope: dict[str, Any]
    services: Services
    record: StepRecord
    index: int | None = None
    # settings already looked up in this execution (a call reads ``server`` several times)
    _settings: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def setting(self, name: str) -> Any:
        """A model setting from the step, else from the workflow's defaults."""
        try:
            return self._settings[name]
        except KeyError:
            value = self._settings[name] = self._lookup(name)
            return value

    def _lookup(self, name: str) -> Any:
        # a model's fields straight from its ``__dict__`` (read a dozen times per call);
        # ``getattr`` for anything else (a setting another step type has, a property)
        fields = self.step.__dict__
        value = fields[name] if name in fields else getattr(self.step, name, None)
        if value is None:
            defaults = self.workflow.spec.defaults
            fields = defaults.__dict__
            value = fields[name] if name in fields else getattr(defaults, name, None)
        return value

    @property
    def label(self) -> str:
        return self.step_id if self.index is None else f"{self.step_id}[{self.index}]"

    def base_request(self, model: str) -> dict[str, Any]:
        """The request fields shared by chat and extract: model and its parameters."""
        request: dict[str, Any] = {"model": model}
        for name in MODEL_PARAMS:
            value = self.setting(name)
            if value is not None:
                request[name] = value
        extra = {
            **(self.workflow.spec.defaults.extra or {}),
            **(getattr(self.step, "extra", None) or {}),
        }
        if extra:
            request["extra"] = extra
        return request

    def warn(self, message: str) -> None:
        if message not in self.record.warnings:
            self.record.warnings.append(message)
