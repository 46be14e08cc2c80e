"""Checks of tools and functions: every ``module:callable`` resolves, tool parameters have
a JSON schema, tool steps pass the arguments their function takes, chat steps name
declared tools."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowrun.errors import did_you_mean
from flowrun.format.imports import ImportProblem, import_callable
from flowrun.format.spec import ChatStep, ToolStep
from flowrun.format.validation import schema_error

if TYPE_CHECKING:
    from flowrun.format.workflow import LoadedWorkflow


class ToolChecks:
    """Reports through ``add(path, message, key=False)``, as the other checks do; fills in
    ``wf.functions``."""

    def __init__(self, wf: LoadedWorkflow, add: Callable[..., None], known_tools: set[str]) -> None:
        self.wf = wf
        self.spec = wf.spec
        self.add = add
        self.known_tools = known_tools

    def resolve_function(self, spec: str, path: tuple[Any, ...]) -> None:
        if spec in self.wf.functions:
            return
        try:
            self.wf.functions[spec] = import_callable(spec, self.wf.base_dir)
        except ImportProblem as exc:
            self.add(path, str(exc) + import_hint(exc, spec))

    def run(self) -> None:
        """Resolve every function; check tool schemas, tool-step arguments and chat tools."""
        for name, tool in self.spec.tools.items():
            self.resolve_function(tool.function, ("tools", name, "function"))
            self.check_tool_schema(name, tool)
        for sid, step in self.spec.steps.items():
            base = ("steps", sid)
            if isinstance(step, ToolStep):
                self.resolve_function(step.function, base + ("function",))
                self.check_tool_step_args(sid, step)
            if isinstance(step, ChatStep):
                names = step.tools or []
                for i, name in enumerate(names):
                    if name not in self.known_tools:
                        self.add(
                            base + ("tools", i),
                            f"step '{sid}' uses unknown tool '{name}'{did_you_mean(name, self.spec.tools)} (declare it under tools:)",
                        )
                choice = step.tool_choice
                if choice and choice not in ("auto", "none", "required") and choice not in names:
                    self.add(
                        base + ("tool_choice",),
                        f"step '{sid}': tool_choice '{choice}' must be auto, none, required or one of the step's tools",
                    )
                if choice and not names:
                    self.add(
                        base + ("tool_choice",),
                        f"step '{sid}': tool_choice needs tools: (list the tools the model may call)",
                    )

    def check_tool_schema(self, name: str, tool: Any) -> None:
        """The tool's parameters: an explicit JSON schema, or one derived from the signature."""
        from flowrun.format.signatures import SignatureProblem, signature_schema

        if tool.parameters is not None:
            where = ("tools", name, "parameters")
            error = schema_error(tool.parameters)
            if error is not None:
                self.add(
                    where, f"tool '{name}': parameters is not a valid JSON schema: {error.message}"
                )
                return
            if tool.parameters.get("type") != "object":
                self.add(where, f"tool '{name}': parameters must be a schema of type object")
            return
        function = self.wf.functions.get(tool.function)
        if function is None:
            return
        try:
            signature_schema(function)
        except SignatureProblem as exc:
            self.add(("tools", name, "function"), f"tool '{name}' ({tool.function}): {exc}")

    def check_tool_step_args(self, sid: str, step: ToolStep) -> None:
        """The argument names of a tool step against the function's signature."""
        function = self.wf.functions.get(step.function)
        if function is None:
            return
        params = _plain_parameters(function)
        if params is None:  # types that need pydantic to tell whether they have a schema
            from flowrun.format.signatures import SignatureProblem, args_model

            try:
                model = args_model(function)
            except SignatureProblem as exc:
                self.add(("steps", sid, "function"), f"step '{sid}' ({step.function}): {exc}")
                return
            params = {n: f.is_required() for n, f in model.model_fields.items()}
        accepts_any = _takes_var_keywords(function)
        for key in step.args:
            if key not in params and not accepts_any:
                self.add(
                    ("steps", sid, "args", key),
                    f"step '{sid}': {step.function} has no parameter '{key}'"
                    f"{did_you_mean(key, params)}",
                    key=True,
                )
        missing = [n for n, required in params.items() if required and n not in step.args]
        if missing:
            self.add(
                ("steps", sid, "args") if "args" in step.model_fields_set else ("steps", sid),
                f"step '{sid}': missing argument(s) for {step.function}: {', '.join(missing)}",
                key=True,
            )


def import_hint(exc: ImportProblem, spec: str) -> str:
    """What to do about a module that was not found: the one named, or one it imports."""
    if not exc.missing:
        return ""
    module = spec.partition(":")[0]
    if exc.missing in (module, module.partition(".")[0]):
        file = exc.missing.replace(".", "/") + ".py"
        return f" (put {file} next to the workflow file, or install the package that provides it)"
    return f" ({module} imports {exc.missing}: install the package that provides it)"


_PLAIN_TYPES: frozenset[Any] = frozenset(
    {str, int, float, bool, list, dict, "str", "int", "float", "bool", "list", "dict"}
)


def _plain_parameters(function: Any) -> dict[str, bool] | None:
    """Parameter name -> required, for a plain function whose parameters are all unannotated
    or of a builtin JSON type (so ``signatures.args_model`` surely accepts it); else None.

    Saves importing ``flowrun.format.signatures`` (and building pydantic models) when validating
    simple tool steps.
    """
    import inspect

    if not inspect.isfunction(function):
        return None
    from pydantic import BaseModel

    hints = getattr(function, "__annotations__", {})
    params: dict[str, bool] = {}
    for name, param in inspect.signature(function).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name.startswith("_") or hasattr(BaseModel, name):
            return None  # pydantic refuses or renames such fields
        hint = hints.get(name, param.empty)
        try:
            plain = hint is param.empty or hint in _PLAIN_TYPES
        except TypeError:  # an unhashable annotation
            plain = False
        if not plain:
            return None
        params[name] = param.default is param.empty
    return params


def _takes_var_keywords(function: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD for p in params)
