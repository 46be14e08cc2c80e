"""Checking run inputs against the declared ones, and parsing ``-i KEY=VALUE`` and input files."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from flowrun.errors import MissingInput, UsageError, did_you_mean
from flowrun.format.checks import input_type_ok
from flowrun.format.datafile import DataError, load_data, load_json, load_yaml
from flowrun.format.spec import Workflow

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


STDIN = "-"


def unknown_input(name: str, declared: Iterable[str]) -> UsageError:
    """``unknown input 'txt' (did you mean 'text'?)``, with the declared inputs as the hint."""
    names = list(declared)
    listed = ", ".join(names) or "none"
    return UsageError(
        f"unknown input '{name}'{did_you_mean(name, names)} (the workflow declares: {listed})"
    )


def check_one_stdin(
    pairs: Iterable[str], inputs_file: str | None, batch: str | None = None
) -> None:
    """Standard input can be read once: by ``--batch -``, ``--inputs-file -`` or one ``-i KEY=@-``."""
    readers = [f"-i {p.partition('=')[0]}=@-" for p in pairs if p.partition("=")[2] == "@-"]
    if inputs_file == STDIN:
        readers.append("--inputs-file -")
    if batch == STDIN:
        readers.append("--batch -")
    if len(readers) > 1:
        raise UsageError(
            f"standard input can be read only once, but {' and '.join(readers)}"
            f" {'both' if len(readers) == 2 else 'all'} read it",
            hint="read the other values from files (KEY=@path, --inputs-file PATH)",
        )


def resolve_inputs(spec: Workflow, given: dict[str, Any] | None) -> dict[str, Any]:
    """Inputs with defaults filled in; unknown, missing or mistyped values raise ``UsageError``."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(spec.inputs))
    if unknown:
        raise unknown_input(unknown[0], spec.inputs)
    values: dict[str, Any] = {}
    for name, decl in spec.inputs.items():
        if name in given:
            value = given[name]
            if decl.coerce and decl.type == "string" and value is not None:
                value = value if isinstance(value, str) else str(value)
            if value is None and decl.required:
                raise UsageError(
                    f"input '{name}' is required and cannot be null; give it a {decl.type} value"
                )
            if value is not None and not input_type_ok(value, decl.type):
                raise UsageError(
                    f"input '{name}' must be of type {decl.type}, got {type(value).__name__}: {str(value)[:60]!r}"
                )
            if decl.enum is not None and value not in decl.enum:
                raise UsageError(f"input '{name}' must be one of {decl.enum}, got {value!r}")
            values[name] = value
        elif decl.required:
            raise MissingInput(name)
        else:
            values[name] = decl.default
    return values


def parse_cli_value(spec: Workflow, name: str, text: str, *, quote: bool = True) -> Any:
    """Turn the text of ``-i name=text`` into the declared input type; an error quotes the
    text only with ``quote`` (not a file's contents: it may be a secret named by mistake)."""
    decl = spec.inputs.get(name)
    if decl is None:
        raise unknown_input(name, spec.inputs)
    kind = decl.type
    got = f", got {text!r}" if quote and len(text) <= 200 else ""
    try:
        if kind == "string":
            return text
        if kind == "integer":
            return int(text)
        if kind == "number":
            number = float(text)
            if not math.isfinite(number):  # 1e400 is inf: not a number a run can use
                raise ValueError(text)
            return (
                int(number)
                if number.is_integer() and "." not in text and "e" not in text.lower()
                else number
            )
        if kind == "boolean":
            lowered = text.strip().lower()
            if lowered in _TRUE | _FALSE:
                return lowered in _TRUE
            raise ValueError(text)
        return load_json(text)
    except DataError as exc:
        if exc.message.startswith("nested"):
            raise UsageError(f"input '{name}': {exc}") from None
        raise UsageError(f"input '{name}' must be of type {kind} (give JSON){got}") from None
    except ValueError:
        raise UsageError(f"input '{name}' must be of type {kind}{got}") from None


def parse_cli_inputs(spec: Workflow, pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as typed values; ``KEY=@file`` reads the value from a file and
    ``KEY=@-`` from standard input."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        from_file = text.startswith("@") and len(text) > 1
        if not sep or not name:
            raise UsageError(
                f"-i expects KEY=VALUE, got {pair!r}",
                hint="write -i NAME=VALUE, or -i NAME=@FILE to read the value from a file",
            )
        if text == "@" + STDIN:
            if name not in spec.inputs:
                raise unknown_input(name, spec.inputs)
            text = sys.stdin.read()
        elif text.startswith("@") and len(text) > 1:
            from flowrun.format.textfile import NotText, read_text

            try:
                text = read_text(text[1:])
            except OSError as exc:
                raise UsageError(
                    f"input '{name}': cannot read {text[1:]}: {exc.strerror}"
                ) from None
            except NotText as exc:
                raise UsageError(f"input '{name}': {text[1:]}: {exc}") from None
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # bytes of argv (or stdin) that were not UTF-8
            raise UsageError(
                f"input '{name}': the value is not UTF-8 text (character {exc.start + 1})"
            ) from None
        values[name] = parse_cli_value(spec, name, text, quote=not from_file)
    return values


def read_inputs_file(path: str | Path) -> dict[str, Any]:
    """Inputs from a JSON or YAML file holding one mapping; ``-`` reads standard input."""
    if str(path) == STDIN:
        try:
            data = load_yaml(sys.stdin.read())  # JSON is YAML too
        except DataError as exc:
            raise UsageError(
                f"standard input: {exc}",
                hint='pipe one mapping of input names to values, e.g. {"text": "..."}',
            ) from None
        if not isinstance(data, dict):
            raise UsageError(
                "standard input: the inputs must be one mapping of input names to values",
                hint='pipe e.g. {"text": "..."} (JSON) or text: ... (YAML)',
            )
        return data
    from flowrun.format.textfile import NotText, read_text

    path = Path(path)
    try:
        text = read_text(path)
    except OSError as exc:
        raise UsageError(f"cannot read the inputs file {path}: {exc.strerror}") from None
    except NotText as exc:
        raise UsageError(f"the inputs file {path}: {exc}") from None
    try:
        data = load_data(text, path.suffix == ".json")
    except DataError as exc:  # says where, never quotes the file
        raise UsageError(f"the inputs file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: the inputs file must hold one mapping of input names to values")
    return data
