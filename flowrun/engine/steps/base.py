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


__all__ = ["MODEL_PARAMS", "StepEnv", "StepError", "StepRecord", "StepSettings"]

MODEL_PARAMS = ("temperature", "top_p", "max_completion_tokens", "seed", "stop", "reasoning_effort")


class StepSettings:
    """A step's model settings (its own, else the workflow's defaults), looked up once per
    run: ``Services.step_settings`` keeps one per step, shared by the step's executions (the
    records of a batch, foreach items, a Batch API step run again for its answer)."""

    __slots__ = ("step", "defaults", "values", "params", "extra")

    def __init__(self, step: Any, defaults: Any) -> None:
        self.step, self.defaults = step, defaults
        self.values: dict[str, Any] = {}
        #: the request fields of ``MODEL_PARAMS`` the step sets (None: not looked up yet)
        self.params: dict[str, Any] | None = None
        #: whether the step or the defaults have ``extra`` (None: not looked up yet)
        self.extra: bool | None = None

    def lookup(self, name: str) -> Any:
        # a model's fields straight from its ``__dict__``; ``getattr`` for anything else (a
        # setting another step type has, a property)
        fields = self.step.__dict__
        value = fields[name] if name in fields else getattr(self.step, name, None)
        if value is None:
            fields = self.defaults.__dict__
            value = fields[name] if name in fields else getattr(self.defaults, name, None)
        self.values[name] = value
        return value


def step_settings(services: Any, step: Any, defaults: Any) -> StepSettings:
    """The run's ``StepSettings`` of ``step`` (made on its first execution in this run)."""
    kept: dict[int, StepSettings] = services.step_settings
    found = kept.get(id(step))
    if found is None or found.step is not step or found.defaults is not defaults:
        found = kept[id(step)] = StepSettings(step, defaults)
    return found


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
    _settings: StepSettings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._settings = step_settings(self.services, self.step, self.workflow.spec.defaults)

    def setting(self, name: str) -> Any:
        """A model setting from the step, else from the workflow's defaults."""
        settings = self._settings
        try:
            return settings.values[name]
        except KeyError:
            return settings.lookup(name)

    @property
    def label(self) -> str:
        return self.step_id if self.index is None else f"{self.step_id}[{self.index}]"

    def base_request(self, model: str) -> dict[str, Any]:
        """The request fields shared by chat and extract: model and its parameters."""
        settings = self._settings
        params = settings.params
        if params is None:
            params = settings.params = {}
            for name in MODEL_PARAMS:
                value = self.setting(name)
                if value is not None:
                    params[name] = value
        request: dict[str, Any] = {"model": model, **params}
        if settings.extra is None:
            settings.extra = bool(self.workflow.spec.defaults.extra) or bool(
                getattr(self.step, "extra", None)
            )
        if settings.extra:
            request["extra"] = {
                **(self.workflow.spec.defaults.extra or {}),
                **(getattr(self.step, "extra", None) or {}),
            }
        return request

    def warn(self, message: str) -> None:
        if message not in self.record.warnings:
            self.record.warnings.append(message)
