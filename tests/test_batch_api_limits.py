"""Batch API file limits: the 50,000 embedding inputs per batch, end to end and in ``pack``."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowrun.batch.batch_api.lines import MAX_EMBEDDING_INPUTS, Limits, Pending, pack
from flowrun.testing import LoopbackServer
from tests.flow_files import make_flow
from tests.helpers import flowrun
from tests.test_batch_api import read_lines, write_records

EMBED = """\
version: 1
name: embed-many
inputs:
  texts: {type: array}
steps:
  vectors:
    type: embed
    input: "{{ inputs.texts }}"
    dimensions: 4
outputs:
  count: "{{ steps.vectors.output | length }}"
"""


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.05")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


def test_the_default_limit_is_50000_embedding_inputs_per_file() -> None:
    assert MAX_EMBEDDING_INPUTS == 50_000
    requests = [Pending(f"r{i}.vectors.00000000.a0", b"{}", inputs=2048) for i in range(25)]
    files = pack(requests, Limits())
    # 24 x 2,048 = 49,152 inputs fit; the 25th request would pass 50,000
    assert [len(f) for f in files] == [24, 1]
    assert all(sum(p.inputs for p in f) <= 50_000 for f in files)


def test_embedding_files_are_split_at_the_input_limit(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.batch_api.max_embedding_inputs = 10
    monkeypatch.setenv("FLOWRUN_BATCH_LIMITS", "50000,209715200,10")
    wf = make_flow(tmp_path, EMBED)
    rows = [{"texts": [f"a{i}", f"b{i}", f"c{i}"]} for i in range(10)]
    records = write_records(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert result.code == 0, result.output
    assert [x["outputs"]["count"] for x in read_lines(out)] == [3] * 10
    batches = server.batch_api.batches_for("/v1/embeddings")
    assert [b.status for b in batches] == ["completed"] * 4  # 3 + 3 + 3 + 1 requests
    assert sorted(len(b.custom_ids) for b in batches) == [1, 3, 3, 3]
