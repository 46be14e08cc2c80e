"""flowrun: run declarative YAML prompt-and-workflow files against the OpenAI API.

```python
from flowrun import load_workflow, run_workflow
wf = load_workflow("workflows/summarize.yaml")
result = run_workflow(wf, inputs={"text": "..."})
result.outputs, result.cost.total_usd, result.status
```
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Public name -> module that defines it. Imported on first use so that `import flowrun`
# (and `flowrun --help`) stays light: the openai SDK loads only when a model is called.
_EXPORTS = {
    "load_workflow": "format.loader",
    "load_workflow_text": "format.loader",
    "LoadedWorkflow": "format.loader",
    "run_workflow": "api",
    "log_metric": "metrics",
    "arun_workflow": "api",
    "resume_run": "api",
    "aresume_run": "api",
    "run_batch": "batch",
    "arun_batch": "batch",
    "BatchResult": "batch",
    "BatchSummary": "batch",
    "estimate_workflow": "engine.estimate",
    "RunResult": "results",
    "StepResult": "results",
    "CostReport": "results",
    "FlowrunError": "errors",
    "WorkflowInvalid": "errors",
    "UsageError": "errors",
    "RunFailed": "errors",
    "StepFailed": "errors",
    "BudgetExceeded": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flowrun' has no attribute {name!r}")
    value = getattr(import_module(f"flowrun.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
