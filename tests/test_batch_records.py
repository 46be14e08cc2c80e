"""Reading batch records (JSONL, CSV, TSV, stdin) and mapping their columns to inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flowrun.batch.records import ColumnMapping, RecordError, RecordFile, parse_mapping_value
from flowrun.errors import UsageError
from flowrun.format.loader import load_workflow_text
from tests.helpers import REPO
from tests.run_helpers import write
from tests.test_batch import ASK

SPEC = load_workflow_text(
    """\
version: 1
name: typed
inputs:
  text: {type: string}
  n: {type: integer, default: 3}
  tags: {type: array, default: []}
steps:
  s: {type: tool, function: "json:dumps", args: {obj: "{{ inputs.text }}"}}
"""
).spec


@pytest.mark.parametrize(
    ("value", "column"),
    [("q", "q"), ("${data.q}", "q"), ("${ data.question text }", "question text"), (" a ", "a")],
)
def test_mapping_values(value, column):
    assert parse_mapping_value(value) == column


def test_csv_values_are_converted_by_the_input_type_and_empty_cells_mean_default(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('text,n,tags\nhello,7,"[""a""]"\n,,\n', encoding="utf-8")
    source = RecordFile(path)
    assert source.columns == ["text", "n", "tags"] and source.count() == 2
    mapping = ColumnMapping(SPEC, file=str(path))
    first, second = (mapping.inputs_for(r)[0] for r in source)
    assert first == {"text": "hello", "n": 7, "tags": ["a"]}
    assert second == {"text": "", "n": 3, "tags": []}  # an empty text stays empty text


def test_csv_type_errors_and_short_rows_name_file_and_line(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("text,n\nok,1\nbad,x\nshort\n", encoding="utf-8")
    mapping = ColumnMapping(SPEC, file=str(path))
    records = list(RecordFile(path))
    with pytest.raises(
        RecordError, match=rf"^{path}:3: input 'n' must be of type integer, got 'x'$"
    ):
        mapping.inputs_for(records[1])
    assert records[2].error == f"{path}:4: 1 fields, but the header has 2"


def test_tsv_and_unknown_suffix_detection(tmp_path):
    tsv = tmp_path / "in.tsv"
    tsv.write_text("text\tn\na, b\t2\n", encoding="utf-8")
    (record,) = RecordFile(tsv)
    assert record.data == {"text": "a, b", "n": "2"}
    sniffed = tmp_path / "records.txt"
    sniffed.write_text('{"text": "x"}\n', encoding="utf-8")
    assert RecordFile(sniffed).format == "jsonl"


def test_skipped_records_are_not_parsed(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a"}\nbroken\n{"text": "c"}\n', encoding="utf-8")
    got = list(RecordFile(path).read(skip=lambda i: i == 1))
    assert [(r.index, r.data) for r in got] == [(0, {"text": "a"}), (2, {"text": "c"})]


def test_mapping_problems_are_usage_errors():
    with pytest.raises(UsageError, match="both by mapping and by inputs"):
        ColumnMapping(SPEC, ["text=a"], {"text": "x"})
    with pytest.raises(UsageError, match="expects INPUT=COLUMN"):
        ColumnMapping(SPEC, ["text"])
    with pytest.raises(UsageError, match="unknown input 'nope'"):
        ColumnMapping(SPEC, [], {"nope": 1})


def test_records_from_stdin(server, tmp_path):
    wf = write(tmp_path, ASK)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "flowrun", "run", str(wf), "--batch", "-"],
        input='{"question": "from stdin"}\n',
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [json.loads(x) for x in proc.stdout.splitlines()]
    assert line["outputs"] == {"answer": "echo: Answer (plain): from stdin"}


def test_a_line_that_is_not_utf8_fails_alone(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"text": "bom"}\n{"text": "\xff\xfe"}\n{"text": "caf\xc3\xa9"}\n'
    )
    got = list(RecordFile(path))
    assert [r.data for r in got] == [{"text": "bom"}, None, {"text": "café"}]
    assert got[1].error == f"{path}:2: not UTF-8 text"
