"""What a step runner gets: its spec, the template scope and the run's services.

(``StepRecord`` and ``StepError`` are re-exported here for the step modules.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowrun.engine.step_record import StepRecord
from flowrun.errors import StepError

if TYPE_CHECKING:
    from flowrun.engine.services import Services
    from flowrun.format.loader import LoadedWorkflow


__all__ = ["MODEL_PARAMS", "StepEnv", "StepError", "StepRecord", "StepSettings"]

MODEL_PARAMS = ("temperature", "top_p", "max_completion_tokens", "seed", "stop", "reasoning_effort")


class _Values(dict):  # type: ignore[type-arg]
    """A step's settings by name; a name not looked up yet is looked up on first use."""

    __slots__ = ("settings",)

    def __init__(self, settings: StepSettings) -> None:
        super().__init__()
        self.settings = settings

    def __missing__(self, name: str) -> Any:
        return self.settings.lookup(name)


class StepSettings:
    """A step's model settings (its own, else the workflow's defaults), looked up once per
    run: ``Services.step_settings`` keeps one per step, shared by the step's executions (the
    records of a batch, foreach items, a Batch API step run again for its answer)."""

    __slots__ = ("step", "defaults", "values", "params", "extra")

    def __init__(self, step: Any, defaults: Any) -> None:
        self.step, self.defaults = step, defaults
        self.values: dict[str, Any] = _Values(self)
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


class StepEnv:
    """One execution of a step (or of one foreach item)."""

    __slots__ = (
        "step_id",
        "step",
        "workflow",
        "scope",
        "services",
        "record",
        "index",
        "label",
        "setting",
        "_settings",
    )

    def __init__(
        self,
        step_id: str,
        step: Any,
        workflow: LoadedWorkflow,
        scope: dict[str, Any],
        services: Services,
        record: StepRecord,
        index: int | None = None,
    ) -> None:
        self.step_id = step_id
        self.step = step
        self.workflow = workflow
        self.scope = scope
        self.services = services
        self.record = record
        self.index = index
        #: the step (or item) as messages and requests name it: ``draft``, ``draft[2]``
        self.label = step_id if index is None else f"{step_id}[{index}]"
        self._settings = settings = step_settings(services, step, workflow.spec.defaults)
        #: ``setting(name)``: a model setting from the step, else from the workflow's
        #: defaults (the settings' dict lookup itself: a model call reads five of them)
        self.setting = settings.values.__getitem__

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
