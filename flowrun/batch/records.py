"""Batch records: a streaming JSONL/CSV reader and the mapping of record columns to inputs.

Records are read one at a time, never loaded whole, so memory stays flat however large the
file is. A line that cannot be parsed becomes a ``SourceRecord`` with an ``error`` naming
``FILE:LINE``; the batch runner fails that record alone.

Column mapping (``--map``) takes an input from another column, written either as a plain
column name (``question=q``) or in promptflow's style (``question=${data.q}``); a plain value
that is not a column of the file is refused with a pointer to ``-i`` (promptflow reads it as
a constant). Columns that are neither inputs nor mapped are not errors: they are returned as
the record's ``extra`` and carried into its output line (e.g. expected answers kept for
evaluation).

Value types: JSON values are taken as they are, except that a string holding an exact number
or boolean literal (``"25"``, ``"0.5"``, ``"true"``) becomes that value for an ``integer``,
``number`` or ``boolean`` input, as promptflow does; CSV cells are text, converted by the
input's type.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from flowrun.errors import RecordError as RecordError
from flowrun.errors import UsageError
from flowrun.format.datafile import MAX_NESTING, nesting_depth
from flowrun.format.inputs import parse_cli_value, resolve_inputs
from flowrun.format.spec import Workflow

TOO_DEEP = f"nested more than {MAX_NESTING} levels deep"
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
CSV_SUFFIXES = frozenset({".csv", ".tsv"})
_DATA_REF = re.compile(r"^\$\{\s*data\.(?P<column>[^}]+?)\s*\}$")
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(slots=True)
class SourceRecord:
    """One record as read: its 0-based ``index``, where it starts, and its columns or error."""

    index: int
    data: dict[str, Any] | None
    line: int | None = None
    error: str | None = None
    typed: bool = True  # False for CSV: every value is text, converted by the input's type


class RecordFile:
    """A JSONL or CSV file of records, read lazily. ``-`` reads standard input (JSONL)."""

    def __init__(self, path: str | Path, fmt: str | None = None) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.stdin = self.name == "-"
        self.format = fmt or self._detect()
        self.columns: list[str] | None = None
        self.sample: list[str] | None = None  # JSONL: the keys of the first record
        if self.stdin:
            return
        if not self.path.is_file():
            what = (
                "is a directory"
                if self.path.is_dir()
                else "is not a regular file (a pipe, device or socket is not read)"
                if self.path.exists()
                else "does not exist"
            )
            raise UsageError(f"records file {self.name} {what}")
        try:
            if self.format == "jsonl":
                self._check_jsonl_head()
            else:
                with self._open() as f:
                    self._check_csv_head(f)
        except OSError as exc:
            raise UsageError(f"cannot read the records file {self.name}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"{self.name}: not UTF-8 text") from None

    def _detect(self) -> str:
        suffix = self.path.suffix.lower()
        if suffix in CSV_SUFFIXES:
            return "tsv" if suffix == ".tsv" else "csv"
        if suffix in JSONL_SUFFIXES or self.stdin:
            return "jsonl"
        try:
            with self.path.open(encoding="utf-8-sig", errors="replace") as f:
                head = next((line for line in f if line.strip()), "")
        except OSError:
            return "jsonl"  # the missing file is reported by __init__
        return "jsonl" if head.lstrip().startswith("{") else "csv"

    def _open(self) -> TextIO:
        if self.stdin:
            return sys.stdin
        newline = "" if self.format in ("csv", "tsv") else None
        return self.path.open(encoding="utf-8-sig", newline=newline)

    def _check_jsonl_head(self) -> None:
        """A JSON array instead of JSON Lines is a file-level problem (exit 2)."""
        with self.path.open("rb") as f:
            head = next((line for line in f if line.strip()), b"")
        if head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"["):
            raise UsageError(
                f"{self.name} holds a JSON array; a records file is JSON Lines (one object per line)",
                hint="convert it with: jq -c '.[]' FILE > FILE.jsonl",
            )
        try:
            first = json.loads(head.removeprefix(codecs.BOM_UTF8))
        except (ValueError, RecursionError):
            return  # the bad line fails as a record
        if isinstance(first, dict):
            self.sample = list(first)

    def _check_csv_head(self, f: TextIO) -> None:
        """A missing, empty or duplicated CSV header is a file-level problem (exit 2)."""
        try:
            header = next(csv.reader(f, dialect=self._dialect()), None)
        except csv.Error as exc:
            raise UsageError(f"{self.name}:1: invalid CSV header: {exc}") from None
        if not header or not any(h.strip() for h in header):
            raise UsageError(f"{self.name}:1: a CSV file needs a header row naming its columns")
        names = [h.strip() for h in header]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise UsageError(f"{self.name}:1: duplicate CSV column '{duplicates[0]}'")
        if "" in names:
            raise UsageError(
                f"{self.name}:1: CSV column {names.index('') + 1} has no name in the header"
            )
        self.columns = names

    def _dialect(self) -> Any:
        return csv.excel_tab if self.format == "tsv" else csv.excel

    def __iter__(self) -> Iterator[SourceRecord]:
        return self.read()

    def read(self, skip: Callable[[int], bool] | None = None) -> Iterator[SourceRecord]:
        """Records in file order; those for which ``skip(index)`` is true are not parsed."""
        if self.format == "jsonl":  # bytes, decoded line by line: a bad line fails alone
            f: Any = sys.stdin.buffer if self.stdin else self.path.open("rb")
        else:
            f = self._open()
        try:
            if self.format == "jsonl":
                yield from self._read_jsonl(f, skip)
            else:
                try:
                    yield from self._read_csv(f, skip)
                except UnicodeDecodeError as exc:
                    raise UsageError(
                        f"{self.name}: not UTF-8 text (byte {exc.start} of a chunk near the last "
                        "record read); records before it were run"
                    ) from None
        finally:
            if not self.stdin:
                f.close()

    def _read_jsonl(
        self, f: Iterable[bytes], skip: Callable[[int], bool] | None
    ) -> Iterator[SourceRecord]:
        index = 0
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            if skip is not None and skip(index):
                index += 1
                continue
            try:
                data = json.loads(raw)
            except UnicodeDecodeError:
                yield SourceRecord(index, None, lineno, f"{self.name}:{lineno}: not UTF-8 text")
                index += 1
                continue
            except ValueError as exc:
                yield SourceRecord(
                    index, None, lineno, f"{self.name}:{lineno}: not valid JSON: {exc}"
                )
            except RecursionError:
                yield SourceRecord(index, None, lineno, f"{self.name}:{lineno}: {TOO_DEEP}")
            else:
                if nesting_depth(data) > MAX_NESTING:
                    yield SourceRecord(index, None, lineno, f"{self.name}:{lineno}: {TOO_DEEP}")
                elif isinstance(data, dict):
                    yield SourceRecord(index, data, lineno)
                else:
                    kind = type(data).__name__ if data is not None else "null"
                    yield SourceRecord(
                        index,
                        None,
                        lineno,
                        f"{self.name}:{lineno}: a record must be a JSON object, got {kind}",
                    )
            index += 1

    def _read_csv(self, f: TextIO, skip: Callable[[int], bool] | None) -> Iterator[SourceRecord]:
        reader = csv.reader(f, dialect=self._dialect(), strict=True)
        columns: list[str] = []
        index = 0
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield SourceRecord(index, None, start, f"{self.name}:{start}: invalid CSV: {exc}")
                index += 1
                continue
            if not columns:
                columns = [h.strip() for h in row]
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if skip is not None and skip(index):
                index += 1
                continue
            if len(row) != len(columns):
                yield SourceRecord(
                    index,
                    None,
                    start,
                    f"{self.name}:{start}: {len(row)} fields, but the header has {len(columns)}",
                )
            else:
                yield SourceRecord(index, dict(zip(columns, row, strict=True)), start, typed=False)
            index += 1

    def count(self) -> int | None:
        """The number of records, counted quickly (CSV fields spanning lines overcount)."""
        if self.stdin:
            return None
        total = 0
        try:
            with self.path.open("rb") as f:
                for line in f:
                    if line.strip():
                        total += 1
        except OSError:
            return None
        return max(0, total - 1) if self.format in ("csv", "tsv") else total


def records_from(items: Iterable[Mapping[str, Any]]) -> Iterator[SourceRecord]:
    """Records from Python mappings (the API's ``run_batch(wf, [{...}, ...])``)."""
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            yield SourceRecord(index, dict(item))
        else:
            yield SourceRecord(
                index, None, error=f"record {index}: expected a mapping, got {type(item).__name__}"
            )


def parse_mapping_value(value: str) -> str:
    """The column a ``--map`` value names: ``q`` or promptflow's ``${data.q}``."""
    text = value.strip()
    match = _DATA_REF.match(text)
    if match:
        return match.group("column").strip()
    if text.startswith("${"):
        raise UsageError(
            f"mapping value {value!r}: only ${{data.COLUMN}} references are supported "
            "(or a plain column name)"
        )
    return text


class ColumnMapping:
    """How a record's columns become a workflow's inputs (plus constants for every record)."""

    def __init__(
        self,
        spec: Workflow,
        mapping: Mapping[str, str] | Iterable[str] | None = None,
        constants: Mapping[str, Any] | None = None,
        file: str | None = None,
    ) -> None:
        self.spec = spec
        self.file = file
        self.constants = dict(constants or {})
        self.sources: dict[str, str] = {}  # input -> column
        self.plain: set[str] = set()  # inputs mapped by a plain name, not ${data.COLUMN}
        pairs = mapping.items() if isinstance(mapping, Mapping) else _split_pairs(mapping or ())
        for name, value in pairs:
            if name not in spec.inputs:
                declared = ", ".join(spec.inputs) or "none"
                raise UsageError(
                    f"mapping[{name}]: the workflow has no input '{name}' (it declares: {declared})"
                )
            if name in self.constants:
                raise UsageError(f"input '{name}' is given both by mapping and by inputs")
            column = parse_mapping_value(value)
            if not column:
                raise UsageError(f"mapping[{name}]: give a column name")
            self.sources[name] = column
            if not _DATA_REF.match(value.strip()):
                self.plain.add(name)
        unknown = sorted(set(self.constants) - set(spec.inputs))
        if unknown:
            from flowrun.format.inputs import unknown_input

            raise unknown_input(unknown[0], spec.inputs)
        # Inputs taken from a column of the same name, unless mapped or given as constants.
        self.implicit = [
            n for n in spec.inputs if n not in self.sources and n not in self.constants
        ]
        self._used_columns = set(self.sources.values()) | set(self.implicit)

    def check_file(self, file: RecordFile) -> None:
        """Up-front checks of a records file's columns (CSV header, first JSONL record)."""
        if file.columns is not None:
            self.check_columns(file.columns, file.name)
        elif file.sample is not None:
            self.check_sample(file.sample, file.name)

    def check_columns(self, columns: list[str], file: str) -> None:
        """Up-front check for files with a header (CSV): mapped and required columns exist."""
        have = set(columns)
        listing = ", ".join(columns)
        for name, column in self.sources.items():
            if column not in have:
                raise UsageError(
                    f"{file}:1: mapping[{name}]: no column '{column}' (columns: {listing})",
                    hint=self._constant_hint(name),
                )
        for name in self.implicit:
            if self.spec.inputs[name].required and name not in have:
                raise UsageError(
                    f"{file}:1: no column for the required input '{name}' (columns: {listing})",
                    hint=f"map another column to it: mapping[{name}]=COLUMN",
                )

    def check_sample(self, keys: list[str], file: str) -> None:
        """JSONL: a plain ``--map`` value that the first record has no column for is refused
        (it is most likely a constant written the promptflow way)."""
        for name in sorted(self.plain):
            column = self.sources[name]
            if column not in keys:
                raise UsageError(
                    f"{file}: mapping[{name}]={column}: the first record has no column '{column}'"
                    f" (columns: {', '.join(keys) or 'none'}); a mapping takes a column",
                    hint=self._constant_hint(name),
                )

    def _constant_hint(self, name: str) -> str | None:
        if name not in self.plain:
            return None
        return (
            f"for the same value in every record, give it with -i {name}=VALUE "
            f"(or map a column with mapping[{name}]='${{data.COLUMN}}')"
        )

    def where(self, record: SourceRecord) -> str:
        if self.file and record.line is not None:
            return f"{self.file}:{record.line}"
        return f"record {record.index}"

    def inputs_for(self, record: SourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
        """The record's inputs (checked, defaults filled) and its extra, unused columns."""
        if record.error is not None:
            raise RecordError(record.error)
        data = record.data or {}
        extra = {k: v for k, v in data.items() if k not in self._used_columns}
        given: dict[str, Any] = dict(self.constants)
        try:
            for name, column in self.sources.items():
                if column not in data:
                    constant = f"; a constant goes in -i {name}=VALUE" if name in self.plain else ""
                    raise RecordError(
                        f"{self.where(record)}: no column '{column}' (mapped to input '{name}')"
                        + constant
                    )
                self._put(given, name, data[column], record)
            for name in self.implicit:
                if name in data:
                    self._put(given, name, data[name], record)
                elif self.spec.inputs[name].required:
                    raise RecordError(
                        f"{self.where(record)}: no column for the required input '{name}'"
                        + (f" (map one with --map {name}=COLUMN)" if self.file else "")
                    )
            try:
                values = resolve_inputs(self.spec, given)
            except UsageError as exc:
                raise RecordError(f"{self.where(record)}: {exc.message}") from None
        except RecordError as exc:
            exc.extra = extra
            raise
        return values, extra

    def _put(self, given: dict[str, Any], name: str, value: Any, record: SourceRecord) -> None:
        if not isinstance(value, str):
            given[name] = value
            return
        if record.typed:
            given[name] = _literal(value, self.spec.inputs[name].type)
            return
        if value == "" and self.spec.inputs[name].type != "string":
            return  # an empty CSV cell of a non-text input: not given (the default applies)
        try:
            given[name] = parse_cli_value(self.spec, name, value)
        except UsageError as exc:
            raise RecordError(f"{self.where(record)}: {exc.message}") from None


def _literal(text: str, kind: str) -> Any:
    """A JSON string for a number or boolean input: its value when it is an exact literal
    (``"25"``, ``"-0.5"``, ``"1e3"``, ``"true"``), else the string (which then fails the type
    check, naming it)."""
    stripped = text.strip()
    if kind == "integer" and _INTEGER.fullmatch(stripped):
        return int(stripped)
    if kind == "number" and _NUMBER.fullmatch(stripped):
        number = float(stripped)
        return int(stripped) if _INTEGER.fullmatch(stripped) else number
    if kind == "boolean" and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    return text


def _split_pairs(pairs: Iterable[str]) -> Iterator[tuple[str, str]]:
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(
                f"--map expects INPUT=COLUMN or INPUT='${{data.COLUMN}}', got {pair!r}"
            )
        yield name.strip(), value
