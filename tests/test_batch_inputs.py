"""Record values and constants: JSONL strings holding numbers or booleans, -i with --batch,
and --map values that are not columns (a constant written the promptflow way)."""

from __future__ import annotations

from flowrun import run_batch
from tests.helpers import flowrun
from tests.run_helpers import write
from tests.test_batch import ASK, chat_texts, jsonl, lines

TYPED = """\
version: 1
name: typed
inputs:
  words: {type: integer}
  ratio: {type: number, default: 1}
  loud: {type: boolean, default: false}
steps:
  say:
    type: chat
    model: gpt-4o-mini
    prompt: "{{ inputs.words * 2 }} {{ inputs.ratio * 2 }} {{ inputs.loud }}"
outputs:
  said: "{{ steps.say.output }}"
"""


def test_jsonl_strings_that_are_exact_literals_fit_number_and_boolean_inputs(server, tmp_path):
    wf = write(tmp_path, TYPED)
    rows = [
        {"words": "25", "ratio": "0.5", "loud": "true"},
        {"words": 3, "ratio": "-2", "loud": "False"},
        {"words": "1e3"},
        {"words": "lots"},
        {"words": " 7 ", "ratio": ".25"},
        {"words": 1, "loud": "yes"},
    ]
    data = jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out)
    assert res.code == 1
    got = lines(out)
    assert [x["status"] for x in got] == ["succeeded", "succeeded"] + ["failed"] * 2 + [
        "succeeded",
        "failed",
    ]
    assert got[0]["outputs"]["said"] == "echo: 50 1.0 True"
    assert got[1]["outputs"]["said"] == "echo: 6 -4 False"
    assert got[4]["outputs"]["said"] == "echo: 14 0.5 False"
    # not an integer literal, not a number at all, not a boolean literal: the record fails
    assert f"{data}:3: input 'words' must be of type integer, got str: '1e3'" in got[2]["error"]
    assert f"{data}:4: input 'words' must be of type integer, got str: 'lots'" in got[3]["error"]
    assert f"{data}:6: input 'loud' must be of type boolean, got str: 'yes'" in got[5]["error"]
    assert len(chat_texts(server)) == 3


def test_a_constant_from_i_applies_to_every_csv_record_over_its_column(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = tmp_path / "in.csv"
    data.write_text("question,style\nq0,loud\nq1,\nq2,quiet\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "-i", "style=terse")
    assert res.code == 0, res.stderr
    assert sorted(chat_texts(server)) == [f"Answer (terse): q{i}" for i in range(3)]
    assert [x["extra"] for x in lines(out)] == [
        {"style": "loud"},
        {"style": ""},
        {"style": "quiet"},
    ]


def test_a_map_value_that_is_no_column_points_to_i(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": "a"}, {"question": "b", "terse": 1}])
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "--map", "style=terse")
    assert res.code == 2
    assert (
        f"error: {data}: --map style=terse: the first record has no column 'terse' "
        "(columns: question); --map takes a column" in res.stderr
    )
    assert "hint: for the same value in every record, give it with -i style=VALUE" in res.stderr

    csv = tmp_path / "in.csv"
    csv.write_text("question\na\n", encoding="utf-8")
    res = flowrun("run", wf, "--batch", csv, "--output", out, "--map", "style=terse")
    assert res.code == 2 and "--map style: no column 'terse' (columns: question)" in res.stderr
    assert "hint: for the same value in every record, give it with -i style=VALUE" in res.stderr
    assert not server.requests and not out.exists()

    # an explicit ${data.COLUMN} is a column for sure: a record without it fails alone
    data = jsonl(tmp_path / "in2.jsonl", [{"question": "a", "terse": "short"}, {"question": "b"}])
    res = flowrun("run", wf, "--batch", data, "--output", out, "--map", "style=${data.terse}")
    assert res.code == 1
    assert [x["status"] for x in lines(out)] == ["succeeded", "failed"]
    assert chat_texts(server) == ["Answer (short): a"]

    rows = [{"question": "c", "terse": "brief"}, {"question": "d"}]
    results = list(run_batch(wf, rows, mapping={"style": "terse"}))
    assert results[0].outputs == {"answer": "echo: Answer (brief): c"}
    assert results[1].error == (
        "record 1: no column 'terse' (mapped to input 'style'); a constant goes in -i style=VALUE"
    )
