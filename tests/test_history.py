"""One history (`runs list/show/prune`) over single runs and batches, and step transcripts."""

from __future__ import annotations

import base64
import json
import os

from flowrun.testing import Reply
from tests.flow_files import make_flow
from tests.helpers import flowrun
from tests.imagefiles import png_bytes
from tests.run_helpers import TWO_STEPS, query, store_path, write


def _ids(*args: str) -> list[str]:
    res = flowrun("runs", "list", "--json", *args)
    assert res.code == 0, res.stderr
    return [r["run_id"] for r in json.loads(res.stdout)]


def _batch(tmp_path, wf, n: int = 3, *extra: str) -> dict:
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps({"x": i}) + "\n" for i in range(n)))
    res = flowrun("run", wf, "--batch", records, "-o", tmp_path / "out.jsonl", "--json", *extra)
    assert res.code in (0, 1), res.stderr
    return json.loads(res.stdout)


def test_one_history_lists_runs_and_batches_with_filters(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    single = json.loads(flowrun("run", wf, "--json").stdout)["run_id"]
    batch = _batch(tmp_path, wf)["batch_id"]
    listed = json.loads(flowrun("runs", "list", "--json").stdout)
    assert [r["run_id"] for r in listed] == [batch, single]  # newest first
    by_id = {r["run_id"]: r for r in listed}
    assert by_id[batch]["kind"] == "batch" and by_id[batch]["records"] == 3
    assert by_id[single]["kind"] == "run" and by_id[single]["records"] is None
    assert by_id[batch]["cost_usd"] > 0 and by_id[single]["cost_usd"] > 0
    assert all(r["status"] == "succeeded" and r["duration_s"] >= 0 for r in listed)
    assert _ids("--kind", "run") == [single]
    assert _ids("--kind", "batch") == [batch]
    assert _ids("--kind", "batch-api") == []
    assert _ids("--workflow", "two-steps", "--limit", "1") == [batch]
    assert _ids("--workflow", "other") == []
    assert _ids("--status", "failed") == []
    assert _ids("--since", "1h") == [batch, single]
    assert _ids("--since", "2999-01-01") == []
    text = flowrun("runs", "list").stdout
    assert "batch" in text.splitlines()[1] and "records" in text.splitlines()[0]


def test_bad_filters_and_unknown_ids_are_one_line_exit_2(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    run_id = json.loads(flowrun("run", wf, "--json").stdout)["run_id"]
    for args, says in [
        (("runs", "list", "--since", "yesterday"), "--since 'yesterday'"),
        (("runs", "show", "no-such-run"), "no run 'no-such-run'"),
        (("runs", "show", run_id, "--step", "third"), "has no step 'third'"),
        (("runs", "show", run_id, "--record", "0"), "--record goes with a batch"),
        (("runs", "prune"), "--older-than"),
        (("runs", "prune", "--older-than", "soon"), "give an age like 30d"),
    ]:
        res = flowrun(*args)
        assert res.code == 2, (args, res.output)
        assert says in res.stderr and len(res.stderr.strip().splitlines()) <= 2, res.stderr
        assert "Traceback" not in res.stderr


def test_a_steps_transcript_shows_what_was_sent_and_what_came_back(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    server.add(Reply(content="the first answer"), match="first step")
    run_id = json.loads(flowrun("run", wf, "--json").stdout)["run_id"]
    res = flowrun("runs", "show", run_id, "--step", "second")
    assert res.code == 0, res.stderr
    text = res.stdout
    # the second prompt was rendered from the first reply; then the reply and its usage
    assert "[user]\nsecond after the first answer" in text
    assert text.index("[user]") < text.index("[reply] finish_reason=stop")
    assert '"max_completion_tokens": 50' in text and "usage:" in text
    doc = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    [call] = doc["steps"]["first"]["transcript"]
    assert call["request"]["messages"] == [{"role": "user", "content": "first step"}]
    assert call["reply"]["content"] == "the first answer"
    assert call["reply"]["finish_reason"] == "stop" and call["retries"] == 0
    assert call["reply"]["usage"]["prompt_tokens"] > 0 and call["latency_s"] >= 0
    # the API key the run used is nowhere in the store
    assert os.environ["OPENAI_API_KEY"].encode() not in store_path().read_bytes()


def test_images_are_stored_as_a_reference_and_big_calls_are_cut(server, tmp_path):
    image = tmp_path / "pic.png"
    image.write_bytes(png_bytes(4, 4))
    wf = make_flow(
        tmp_path,
        """
        version: 1
        name: look
        inputs: {image: {type: string}, text: {type: string}}
        defaults: {model: local-vision-model}  # not in the catalog: no context-window check
        steps:
          look:
            type: chat
            prompt: "{{ inputs.text }}"
            images: ["{{ inputs.image }}"]
        """,
    )
    big = "word " * 300_000  # 1.5 MB of prompt
    res = flowrun("run", wf, "-i", f"image={image}", "-i", f"text={big}", "--json")
    assert res.code == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    [(stored,)] = query("SELECT transcript FROM steps WHERE run_id=?", (run_id,))
    assert len(stored.encode()) <= 1_000_000
    assert base64.b64encode(png_bytes(4, 4)).decode()[:40] not in stored
    [call] = json.loads(stored)
    assert call["truncated"]["original_bytes"] > 1_000_000
    parts = call["request"]["messages"][-1]["content"]
    image_part = next(p for p in parts if p["type"] == "image_url")
    assert image_part["image"]["media_type"] == "image/png"
    assert image_part["image"]["bytes"] == len(png_bytes(4, 4))
    text_part = next(p for p in parts if p["type"] == "text")
    assert "[cut " in text_part["text"]
    shown = flowrun("runs", "show", run_id, "--step", "look").stdout
    assert f"<image image/png, {len(png_bytes(4, 4))} bytes>" in shown and "(cut:" in shown


def test_transcripts_can_be_turned_off_by_flag_and_by_the_workflow(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    run_id = json.loads(flowrun("run", wf, "--json", "--no-transcripts").stdout)["run_id"]
    assert query("SELECT transcript FROM steps WHERE run_id=?", (run_id,)) == [(None,), (None,)]
    quiet = write(tmp_path, TWO_STEPS.replace("defaults:\n", "defaults:\n  transcripts: false\n"))
    run_id = json.loads(flowrun("run", quiet, "--json").stdout)["run_id"]
    assert query("SELECT transcript FROM steps WHERE run_id=?", (run_id,)) == [(None,), (None,)]
    shown = flowrun("runs", "show", run_id, "--step", "first").stdout
    assert "transcripts were off" in shown
    batch = _batch(tmp_path, wf, 2, "--no-transcripts")["batch_id"]
    record = json.loads(flowrun("runs", "show", batch, "--record", "1", "--json").stdout)
    assert "transcript" not in record["steps"]["first"]


def test_a_batch_shows_counts_cost_and_one_records_steps(server, tmp_path):
    wf = make_flow(
        tmp_path,
        """
        version: 1
        name: per-record
        inputs: {x: {type: integer}}
        defaults: {model: gpt-4o-mini}
        steps:
          ask:
            type: chat
            prompt: "record {{ inputs.x }}"
        """,
    )
    server.add(Reply(status=400, error="bad record"), match="record 1")
    batch = _batch(tmp_path, wf, 3)["batch_id"]
    doc = json.loads(flowrun("runs", "show", batch, "--json").stdout)
    assert doc["kind"] == "batch" and doc["status"] == "failed"
    assert doc["by_status"] == {"succeeded": 2, "failed": 1}
    assert doc["cost_usd"] > 0 and doc["records"] == 3
    text = flowrun("runs", "show", batch).stdout
    assert "2 succeeded" in text and "1 failed" in text
    record = json.loads(flowrun("runs", "show", batch, "--record", "2", "--json").stdout)
    assert record["status"] == "succeeded"
    [call] = record["steps"]["ask"]["transcript"]
    assert call["request"]["messages"][-1]["content"] == "record 2"
    failed = flowrun("runs", "show", batch, "--record", "1", "--step", "ask").stdout
    assert "[user]\nrecord 1" in failed and "[error] API error 400: bad record" in failed
    res = flowrun("runs", "show", batch, "--record", "7")
    assert res.code == 2 and "has no record 7" in res.stderr


def test_prune_deletes_old_runs_with_what_they_hold_and_the_store_shrinks(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS.replace('prompt: "first step"', 'prompt: "{{ inputs.t }}"'))
    wf.write_text(wf.read_text().replace("steps:", "inputs: {t: {type: string}}\nsteps:", 1))
    padding = "x" * 200_000
    old = [json.loads(flowrun("run", wf, "-i", f"t={padding}", "--json").stdout) for _ in range(3)]
    batch = _batch(tmp_path, write(tmp_path, TWO_STEPS, "b.yaml"), 2)["batch_id"]
    keep = json.loads(flowrun("run", wf, "-i", "t=small", "--json").stdout)["run_id"]
    before = store_path().stat().st_size
    res = flowrun("runs", "prune", "--keep", "1", "--json")
    assert res.code == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["deleted_runs"], report["deleted_batches"]) == (3, 1)
    assert _ids() == [keep]
    assert query("SELECT COUNT(*) FROM steps WHERE run_id != ?", (keep,)) == [(0,)]
    assert query("SELECT COUNT(*) FROM batch_records") == [(0,)]
    assert query("SELECT COUNT(*) FROM batches") == [(0,)]
    assert store_path().stat().st_size < before / 2
    assert report["bytes_after"] < report["bytes_before"]
    assert old  # (the three padded runs were what made the store big)
    res = flowrun("runs", "prune", "--older-than", "30d")
    assert res.code == 0 and "deleted 0 run(s)" in res.stdout
    assert _ids() == [keep] and batch not in _ids()


def test_mock_and_unpriced_runs_show_no_dollars_in_the_history(server, tmp_path):
    """A --mock run reads 'mock' and a run with an unpriced model 'unpriced', never $0."""
    wf = write(tmp_path, TWO_STEPS)
    mock_run = json.loads(flowrun("run", wf, "--mock", "--json").stdout)["run_id"]
    unpriced = write(tmp_path, TWO_STEPS.replace("gpt-4o-mini", "llama3"), name="local.yaml")
    local_run = json.loads(flowrun("run", unpriced, "--json").stdout)["run_id"]
    records = tmp_path / "records.jsonl"
    records.write_text('{"x": 1}\n{"x": 2}\n')
    mock_batch = flowrun(
        "run", wf, "--mock", "--batch", records, "-o", tmp_path / "o.jsonl", "--json"
    )
    batch_id = json.loads(mock_batch.stdout)["batch_id"]
    listed = {r["run_id"]: r for r in json.loads(flowrun("runs", "list", "--json").stdout)}
    assert listed[mock_run]["cost_usd"] is None and listed[mock_run]["cost_note"] == "mock"
    assert listed[local_run]["cost_usd"] is None
    assert listed[local_run]["cost_note"] == "unpriced"
    assert listed[batch_id]["cost_usd"] is None and listed[batch_id]["cost_note"] == "mock"
    rows = {line.split()[0]: line for line in flowrun("runs", "list").stdout.splitlines()[1:]}
    assert rows[mock_run].rstrip().endswith("mock") and "$" not in rows[mock_run]
    assert rows[local_run].rstrip().endswith("unpriced")
    assert rows[batch_id].rstrip().endswith("mock")
    shown = flowrun("runs", "show", local_run).stdout
    assert "cost unpriced" in shown and "$0.000000" not in shown


def test_a_records_history_keeps_the_transcripts_of_steps_done_in_an_earlier_run(
    server, tmp_path, monkeypatch
):
    """A Batch API record runs once per wave; a resumed batch reuses steps of the process
    before. Every step's transcript is in the record's history all the same."""
    from tests.test_batch_api import DIAMOND

    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.05")
    wf = make_flow(tmp_path, DIAMOND)
    records = tmp_path / "in.jsonl"
    records.write_text("".join(json.dumps({"text": f"ticket {i}"}) + "\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", records, "-o", out, "--via", "batch-api", "--json")
    assert res.code == 0, res.stderr
    batch = json.loads(res.stdout)["batch_id"]
    record = json.loads(flowrun("runs", "show", batch, "--record", "1", "--json").stdout)
    sent = {
        sid: [call["request"]["messages"][-1]["content"] for call in step["transcript"]]
        for sid, step in record["steps"].items()
    }
    assert sent == {
        "a": ["summarize ticket 1"],
        "b": ["keywords ticket 1"],
        "join": ["combine echo: summarize ticket 1 | echo: keywords ticket 1"],
    }
    shown = flowrun("runs", "show", batch, "--record", "1", "--step", "a").stdout
    assert "[user]\nsummarize ticket 1" in shown and "echo: summarize ticket 1" in shown

    # a live batch whose join failed: the resume reuses a and b, and shows what they sent
    server.add(Reply(status=400, error="no join today"), match="combine", times=3)
    live_out = tmp_path / "live.jsonl"
    assert flowrun("run", wf, "--batch", records, "-o", live_out).code == 1
    assert server.pending == 0
    res = flowrun("run", wf, "--batch", records, "-o", live_out, "--resume", "--json")
    assert res.code == 0, res.stderr
    resumed = json.loads(res.stdout)["batch_id"]
    record = json.loads(flowrun("runs", "show", resumed, "--record", "2", "--json").stdout)
    assert record["steps"]["a"]["transcript"][0]["request"]["messages"][-1]["content"] == (
        "summarize ticket 2"
    )
    assert record["steps"]["join"]["transcript"][0]["reply"]["content"].startswith("echo: combine")
