"""Load a workflow file: YAML with line marks -> pydantic model -> checked, graphed workflow.

Every problem in the file is collected and raised together as ``WorkflowInvalid``.
(``LoadedWorkflow`` itself lives in ``workflow``; it is re-exported here.)
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from flowrun.errors import Problem, WorkflowInvalid
from flowrun.format.server_data import keys_in_file
from flowrun.format.spec import (
    Workflow,
)
from flowrun.format.spec_problems import pydantic_problems, without_invalid_parts
from flowrun.format.workflow import LoadedWorkflow
from flowrun.format.yaml_source import YamlTooLarge, describe_yaml_error, parse_yaml

__all__ = ["LoadedWorkflow", "load_workflow", "load_workflow_text"]


def load_workflow(
    path: str | Path, *, check_budget: bool = False, check_env: bool = False
) -> LoadedWorkflow:
    """Load and check a workflow file; raises ``WorkflowInvalid`` listing every problem.

    ``check_budget`` (``flowrun validate``): a ``budget:`` must be keepable with the shipped
    price table (or ``$FLOWRUN_PRICES``); a run checks it with its own prices instead.
    ``check_env`` (``flowrun validate``): the key variable of every named server a step uses
    must be set.
    """
    from flowrun.format.textfile import NotText, read_text

    if "\0" in str(path):  # (the Python API: no file name has one)
        raise WorkflowInvalid([Problem(repr(str(path)), 1, 1, "no such file (a NUL character)")])
    path = Path(path)
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise WorkflowInvalid([Problem(str(path), 1, 1, "no such file")]) from None
    except IsADirectoryError:
        hint = f"is a directory; give the workflow files in it, e.g. {path / '*.yaml'}"
        raise WorkflowInvalid([Problem(str(path), 1, 1, hint)]) from None
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise WorkflowInvalid([Problem(str(path), 1, 1, f"cannot read the file: {why}")]) from None
    except NotText as exc:
        raise WorkflowInvalid([Problem(str(path), 1, 1, f"cannot read the file: {exc}")]) from None
    return load_workflow_text(
        text, file=str(path), base_dir=path.parent, check_budget=check_budget, check_env=check_env
    )


def load_workflow_text(
    text: str,
    file: str = "<string>",
    base_dir: str | Path | None = None,
    *,
    check_budget: bool = False,
    check_env: bool = False,
) -> LoadedWorkflow:
    """Load a workflow from YAML text; relative paths resolve against ``base_dir``.

    Every problem is collected: when some keys or steps do not fit the model, they are
    reported and left out, and the rest of the file is still checked (templates,
    references, tools, schemas, models; the budget with ``check_budget``).
    """
    from flowrun.format.checks import Unchecked, check_workflow

    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        data, smap, duplicates = parse_yaml(text, file)
    except yaml.YAMLError as exc:
        line, col, message = describe_yaml_error(exc, text)
        raise WorkflowInvalid([Problem(file, line, col, message)]) from None
    except YamlTooLarge as exc:
        raise WorkflowInvalid([Problem(file, exc.line, exc.col, exc.message)]) from None
    problems = [
        Problem(
            file,
            d.line,
            d.col,
            f"duplicate key '{d.key}' (first defined on line {d.first_line}); keep only one",
        )
        for d in duplicates
    ]
    if not isinstance(data, dict):
        problems.append(
            Problem(
                file, 1, 1, "a workflow file must be a YAML mapping with version, name and steps"
            )
        )
        raise WorkflowInvalid(problems)
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    for section in ("inputs", "defaults", "tools", "outputs", "budget", "servers"):
        if section in data and data[section] is None:  # `inputs:` with nothing under it
            del data[section]
    problems += keys_in_file(data, smap)
    unchecked = Unchecked()
    try:
        spec = Workflow.model_validate(data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, data, smap))
        partial = without_invalid_parts(data, exc, unchecked)
        if partial is None:
            raise WorkflowInvalid(problems) from None
        spec = partial
    loaded = LoadedWorkflow(spec=spec, text=text, source=smap, base_dir=base)
    if file != "<string>":
        loaded.path = Path(file)
    problems.extend(
        check_workflow(loaded, unchecked, check_budget=check_budget, check_env=check_env)
    )
    if problems:
        raise WorkflowInvalid(problems)
    return loaded
